"""Our own tables (API tokens, audit log) in PostgreSQL, in schema ``taskscheduler``.

Prefect's tables hold everything about tasks and jobs; ours hold only what Prefect's
open-source server lacks. They live in their own schema of the same database, with their own
Alembic history (``migrations/``, version table ``taskscheduler.alembic_version``), so neither
migration chain ever sees the other's tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from taskscheduler import errors
from taskscheduler.settings import Settings
from taskscheduler.store.tables import SCHEMA

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant shared by every migrator: `make up` and each API process may start together.
_MIGRATION_LOCK = 0x7461736B73  # "tasks"

__all__ = ["MIGRATIONS", "SCHEMA", "create_engine", "migrate", "require_current"]


def create_engine(settings: Settings, *, pooled: bool = True) -> AsyncEngine:
    """An asyncpg engine on the platform's database.

    Short-lived callers (the CLI, the SDK's default audit sink) take ``pooled=False`` so that no
    connection outlives the event loop that opened it.
    """
    if pooled:
        return create_async_engine(settings.asyncpg_url, pool_size=5, pool_pre_ping=True)
    return create_async_engine(settings.asyncpg_url, poolclass=NullPool)


async def migrate(engine: AsyncEngine) -> None:
    """Bring our schema to the latest revision; safe to run from several processes at once."""
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            await conn.run_sync(_upgrade)
    except OSError as exc:
        raise errors.PlatformUnavailable(f"cannot reach the database: {exc}") from exc


async def require_current(engine: AsyncEngine) -> None:
    """Refuse to serve on tables older than this code (``migrate`` first, as the bootstrap)."""
    try:
        async with engine.connect() as conn:
            version = text(f"SELECT version_num FROM {SCHEMA}.alembic_version")  # noqa: S608
            current = await conn.scalar(version)
            head = await conn.run_sync(_head)
    except OSError as exc:
        raise errors.PlatformUnavailable(f"cannot reach the database: {exc}") from exc
    except DBAPIError as exc:
        raise errors.PlatformUnavailable(f"our tables are missing: {exc.orig}") from exc
    if current != head:
        raise errors.PlatformUnavailable(
            f"our tables are at revision {current}, this code needs {head}: migrate first"
            " (python -m taskscheduler.store)"
        )


def _head(connection: Connection) -> str | None:
    return ScriptDirectory.from_config(_config(connection)).get_current_head()


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")
