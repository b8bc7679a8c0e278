"""The database roles: each part of the platform connects as a role of its own, none superuser.

One database holds Prefect's tables (schema ``public``) and ours (schema ``taskscheduler``).
Three roles, named after the database so several platforms can share a server:

- ``<db>_prefect`` owns the database and Prefect's tables; the Prefect server logs in as it.
- ``<db>_api`` is our REST API (and the job gateway): it owns the tokens table, reads
  Prefect's tables (monitoring) and may only INSERT and SELECT the audit log.
- ``<db>_audit`` owns the audit log and cannot log in, so no component can disable the
  log's append-only triggers, drop it, or change ``session_replication_role`` (superuser).

Passwords are stored as SCRAM-SHA-256. ``bootstrap`` runs once per start with a role that may
create roles (``make up`` uses the machine's trusted local superuser; compose, its
``POSTGRES_USER``), applies our migrations and hands every object to its owner; nothing after
it needs more than its own role.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from taskscheduler import errors
from taskscheduler.store.tables import SCHEMA

MAX_IDENTIFIER = 63


@dataclasses.dataclass(frozen=True)
class Roles:
    """The role names of one database."""

    prefect: str
    api: str
    audit: str

    @classmethod
    def of(cls, database: str) -> Roles:
        """The roles of ``database`` (cut to PostgreSQL's 63-character identifiers)."""
        stem = database[: MAX_IDENTIFIER - len("_prefect")]
        return cls(prefect=f"{stem}_prefect", api=f"{stem}_api", audit=f"{stem}_audit")

    @property
    def all(self) -> tuple[str, str, str]:
        """Every role."""
        return (self.prefect, self.api, self.audit)


def role_url(admin_url: str, role: str, password: str) -> str:
    """The admin URL with ``role`` and its password instead of the admin's login."""
    url: URL = make_url(admin_url).set(username=role, password=password)
    return url.render_as_string(hide_password=False)


async def bootstrap(admin_url: str, *, prefect_password: str, api_password: str) -> Roles:
    """Create or update the roles, give the database and Prefect's objects to the Prefect role,
    apply our migrations, and grant each role what it needs and no more."""
    url = make_url(admin_url).set(drivername="postgresql+asyncpg")
    database = url.database
    if not database:
        raise errors.PlatformUnavailable("the database URL names no database")
    roles = Roles.of(database)
    server = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            await conn.execute(text("SET password_encryption = 'scram-sha-256'"))
            await _login_role(conn, roles.prefect, prefect_password)
            await _login_role(conn, roles.api, api_password)
            await _role(conn, roles.audit, "NOLOGIN")
            quoted = _ident(database)
            await conn.execute(text(f"ALTER DATABASE {quoted} OWNER TO {_ident(roles.prefect)}"))
            await conn.execute(text(f"REVOKE ALL ON DATABASE {quoted} FROM PUBLIC"))
            await conn.execute(text(f"GRANT CONNECT ON DATABASE {quoted} TO {_ident(roles.api)}"))
    finally:
        await server.dispose()
    own = create_async_engine(url)
    try:
        async with own.begin() as conn:
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            await _adopt_prefect_objects(conn, roles.prefect)
        from taskscheduler import store

        await store.migrate(own)
        async with own.begin() as conn:
            await _grant(conn, roles)
    finally:
        await own.dispose()
    return roles


async def drop(admin_url: str) -> None:
    """Drop the roles of the database of ``admin_url`` (after the database itself)."""
    url = make_url(admin_url).set(drivername="postgresql+asyncpg")
    roles = Roles.of(url.database or "")
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for role in roles.all:
                await conn.execute(text(f"DROP ROLE IF EXISTS {_ident(role)}"))
    finally:
        await engine.dispose()


async def _login_role(conn: AsyncConnection, role: str, password: str) -> None:
    literal = password.replace("'", "''")
    await _role(conn, role, f"LOGIN PASSWORD '{literal}'")


async def _role(conn: AsyncConnection, role: str, options: str) -> None:
    exists = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(
        text(
            f"{verb} ROLE {_ident(role)} {options}"
            " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        )
    )


async def _adopt_prefect_objects(conn: AsyncConnection, owner: str) -> None:
    """Give Prefect's tables and types to its role (a database created or restored by the
    superuser has them owned by it); extension members stay the extension's."""
    rows = await conn.execute(
        text(
            """
            SELECT 'TABLE', c.relname FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND pg_get_userbyid(c.relowner) <> :owner
            UNION ALL
            SELECT 'SEQUENCE', c.relname FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'S'
               AND pg_get_userbyid(c.relowner) <> :owner
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
            UNION ALL
            SELECT 'TYPE', t.typname FROM pg_type t
              JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
               AND pg_get_userbyid(t.typowner) <> :owner
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.objid = t.oid AND d.deptype = 'e')
            """
        ),
        {"owner": owner},
    )
    for kind, name in rows.all():
        await conn.execute(text(f"ALTER {kind} public.{_ident(name)} OWNER TO {_ident(owner)}"))


async def _grant(conn: AsyncConnection, roles: Roles) -> None:
    """Our schema: the audit role owns it and the log; the API owns the tokens, reads Prefect's
    tables, and may only INSERT and SELECT the log."""
    api, audit, prefect = _ident(roles.api), _ident(roles.audit), _ident(roles.prefect)
    statements = [
        f"ALTER SCHEMA {SCHEMA} OWNER TO {audit}",
        f"ALTER TABLE {SCHEMA}.audit_log OWNER TO {audit}",
        f"ALTER TABLE {SCHEMA}.alembic_version OWNER TO {audit}",
        f"ALTER FUNCTION {SCHEMA}.audit_log_append_only() OWNER TO {audit}",
        f"ALTER TABLE {SCHEMA}.tokens OWNER TO {api}",
        f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {api}",
        f"REVOKE ALL ON {SCHEMA}.audit_log FROM {api}",
        f"GRANT SELECT, INSERT ON {SCHEMA}.audit_log TO {api}",
        f"GRANT SELECT ON {SCHEMA}.alembic_version TO {api}",
        f"GRANT USAGE ON SCHEMA public TO {api}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {api}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {prefect} IN SCHEMA public"
        f" GRANT SELECT ON TABLES TO {api}",
    ]
    for statement in statements:
        await conn.execute(text(statement))


def _ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
