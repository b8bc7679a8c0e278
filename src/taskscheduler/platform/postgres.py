"""The platform's PostgreSQL: the local cluster under it, its database, and the roles that use it.

All of the platform's state lives here (Prefect's and ours), so a later ``up`` finds every
deployment, work pool and block again. Prefect and our API each connect as a role of their own,
never as the bootstrap (super)user of ``TASKS_DATABASE_URL`` (see ``dbroles``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler import credentials, dbroles, errors
from taskscheduler.platform.addresses import port_open
from taskscheduler.platform.processes import POLL_SECONDS, ServiceFailed, wait_for
from taskscheduler.settings import Settings

POSTGRES_TIMEOUT = 30.0
CLUSTERS = Path("/etc/postgresql")


class Database:
    """The database named in ``TASKS_DATABASE_URL``, and the cluster that serves it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def url(self) -> URL:
        """The bootstrap URL, parsed."""
        return make_url(self.settings.database_url)

    def ensure_cluster(self) -> None:
        """Start the local PostgreSQL cluster if nothing answers on the database port."""
        url = self.url
        host, port = url.host or "127.0.0.1", url.port or 5432
        if port_open(host, port):
            return
        local = host in {"127.0.0.1", "localhost", "::1"}
        if not local or not CLUSTERS.is_dir() or not shutil.which("pg_ctlcluster"):
            raise errors.PlatformUnavailable(
                f"PostgreSQL does not answer on {host}:{port} and there is no local"
                " cluster to start"
            )
        versions = sorted((p.name for p in CLUSTERS.iterdir() if p.is_dir()), key=_version_key)
        if not versions:
            raise errors.PlatformUnavailable(f"no PostgreSQL cluster in {CLUSTERS}")
        command = [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            versions[-1],
            "main",
            "start",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 and not port_open(host, port):
            output = (result.stderr or result.stdout).strip()
            reason = output.splitlines()[0] if output else f"exit code {result.returncode}"
            raise ServiceFailed(
                f"PostgreSQL does not answer on {host}:{port} and"
                f" `{' '.join(command)}` failed: {reason}",
                output,
            )
        wait_for(
            lambda: port_open(host, port),
            POSTGRES_TIMEOUT,
            f"PostgreSQL did not answer on {host}:{port} within {POSTGRES_TIMEOUT:.0f} s",
        )

    def ensure_database(self) -> None:
        """Create the database named in ``database_url`` if it does not exist yet."""
        asyncio.run(self._ensure_database())

    async def _ensure_database(self) -> None:
        name = self.url.database
        if not name:
            raise errors.PlatformUnavailable("TASKS_DATABASE_URL names no database")
        engine = create_async_engine(_admin_url(self.url), isolation_level="AUTOCOMMIT")
        try:
            deadline = time.monotonic() + POSTGRES_TIMEOUT
            while True:
                try:
                    async with engine.connect() as conn:
                        exists = await conn.scalar(
                            text("SELECT 1 FROM pg_database WHERE datname = :name"),
                            {"name": name},
                        )
                        if not exists:
                            quoted = engine.dialect.identifier_preparer.quote(name)
                            await conn.execute(text(f"CREATE DATABASE {quoted}"))
                    return
                except OSError as exc:
                    # A cluster that has just been started refuses connections for a moment.
                    if time.monotonic() > deadline:
                        raise errors.PlatformUnavailable(
                            f"cannot connect to PostgreSQL: {exc}"
                        ) from exc
                except Exception as exc:
                    if "starting up" not in str(exc) or time.monotonic() > deadline:
                        raise errors.PlatformUnavailable(
                            f"cannot create database {name!r}: {exc}"
                        ) from exc
                await asyncio.sleep(POLL_SECONDS)
        finally:
            await engine.dispose()

    def tune(self, settings: Mapping[str, str]) -> None:
        """Apply PostgreSQL settings to this platform's database only (``ALTER DATABASE``)."""
        if not settings:
            return

        async def run() -> None:
            engine = create_async_engine(_admin_url(self.url), isolation_level="AUTOCOMMIT")
            try:
                async with engine.connect() as conn:
                    name = engine.dialect.identifier_preparer.quote(self.url.database or "")
                    for key, value in settings.items():
                        await conn.execute(text(f"ALTER DATABASE {name} SET {key} = '{value}'"))
            finally:
                await engine.dispose()

        asyncio.run(run())

    def bootstrap_roles(self, creds: credentials.Credentials) -> None:
        """The database roles (``dbroles``), our own tables (tokens, audit log) at their latest
        revision, and every object handed to its role; run with the bootstrap URL."""
        asyncio.run(
            dbroles.bootstrap(
                self.settings.database_url,
                prefect_password=creds.prefect_db_password.get_secret_value(),
                api_password=creds.api_db_password.get_secret_value(),
            )
        )

    @property
    def roles(self) -> dbroles.Roles:
        """The database roles of this platform's database."""
        return dbroles.Roles.of(self.url.database or "")

    def prefect_url(self, creds: credentials.Credentials) -> str:
        """How the Prefect server connects: as its own role, with its password (asyncpg)."""
        password = creds.prefect_db_password.get_secret_value()
        return dbroles.role_url(self.settings.asyncpg_url, self.roles.prefect, password)

    def api_url(self, creds: credentials.Credentials) -> str:
        """How our API and the job gateway connect: as the API's role, with its password."""
        password = creds.api_db_password.get_secret_value()
        return dbroles.role_url(self.settings.database_url, self.roles.api, password)

    def prefect_encryption_key(self) -> str | None:
        """The key Prefect generated in its database before we set one, to keep blocks readable."""

        async def read() -> str | None:
            engine = create_async_engine(self.settings.asyncpg_url)
            try:
                async with engine.connect() as conn:
                    value = await conn.scalar(
                        text("SELECT value FROM configuration WHERE key = 'ENCRYPTION_KEY'")
                    )
            except Exception:  # noqa: BLE001 - no database or no table yet: nothing to keep
                return None
            finally:
                await engine.dispose()
            key = value.get("fernet_key") if isinstance(value, dict) else None
            return key if isinstance(key, str) else None

        return asyncio.run(read())


def drop_database(database_url: str) -> None:
    """Drop a throwaway database (tests, benchmarks) after ending its connections."""

    async def drop() -> None:
        url = make_url(database_url)
        engine = create_async_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": url.database},
                )
                quoted = engine.dialect.identifier_preparer.quote(url.database or "")
                await conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
        finally:
            await engine.dispose()
        await dbroles.drop(database_url)

    asyncio.run(drop())


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _admin_url(url: URL) -> URL:
    """The same server's maintenance database, through asyncpg."""
    return url.set(drivername="postgresql+asyncpg", database="postgres")
