"""Our Alembic migrations on real PostgreSQL: each revision does to existing rows what its
docstring says. Every test gets a scratch database on the platform's server, dropped after."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable, Iterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler import store
from taskscheduler.platform import LocalPlatform, drop_database


@pytest.fixture
def scratch_url(platform: LocalPlatform) -> Iterator[str]:
    """The asyncpg URL of a new empty database on the platform's PostgreSQL server."""
    url = make_url(platform.settings.asyncpg_url)
    scratch = url.set(database=f"tasks_test_migrate_{secrets.token_hex(4)}")

    async def create() -> None:
        engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{scratch.database}"'))
        finally:
            await engine.dispose()

    asyncio.run(create())
    try:
        yield scratch.render_as_string(hide_password=False)
    finally:
        drop_database(scratch.render_as_string(hide_password=False))


def _upgrade_to(revision: str) -> Callable[[Connection], None]:
    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(store.MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return upgrade


def test_0002_gives_existing_tokens_docker_and_no_secret_and_admins_everything(
    scratch_url: str,
) -> None:
    ids = {scope: uuid.uuid4() for scope in ("read", "write", "admin")}

    async def run() -> dict[str, tuple[list[str] | None, list[str] | None]]:
        engine = create_async_engine(scratch_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"CREATE SCHEMA {store.SCHEMA}"))
                await conn.run_sync(_upgrade_to("0001"))
                for scope, token_id in ids.items():
                    await conn.execute(
                        text(
                            f"INSERT INTO {store.SCHEMA}.tokens"
                            " (id, name, scope, token_hash, hint, created_by)"
                            " VALUES (:id, :scope, :scope, :hash, 'tsk_', 'test')"
                        ),
                        {"id": token_id, "scope": scope, "hash": uuid.uuid4().hex},
                    )
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade_to("head"))
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(f"SELECT scope, pools, secrets FROM {store.SCHEMA}.tokens")
                )
                found = {row.scope: (row.pools, row.secrets) for row in rows}
            # From now on the database itself refuses an unrestricted non-admin token.
            with pytest.raises(IntegrityError, match="tokens_grants"):
                async with engine.begin() as conn:
                    await conn.execute(
                        text(f"UPDATE {store.SCHEMA}.tokens SET pools = NULL WHERE id = :id"),
                        {"id": ids["write"]},
                    )
            with pytest.raises(IntegrityError, match="tokens_grants"):
                async with engine.begin() as conn:
                    await conn.execute(
                        text(f"UPDATE {store.SCHEMA}.tokens SET secrets = '{{}}' WHERE id = :id"),
                        {"id": ids["admin"]},
                    )
            return found
        finally:
            await engine.dispose()

    found = asyncio.run(run())
    assert found == {
        "read": (["docker"], []),
        "write": (["docker"], []),
        "admin": (None, None),
    }
