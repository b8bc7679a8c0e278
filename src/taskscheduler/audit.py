"""The audit log: who did what to which task or job, and how it ended — append-only.

Every state-changing call through the SDK, the CLI or the REST API appends one row, refused
calls included: the SDK records its own operations (``sdk.AsyncTaskScheduler`` holds an
``Actor`` and an ``AuditSink``), the API records what it refuses before the SDK is reached
(no token, wrong scope, a body that does not parse). Rows hold names, ids and hashes only —
never code, parameters or secret values. A database trigger refuses UPDATE, DELETE and
TRUNCATE on the table, so no part of the product can rewrite history.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler import errors
from taskscheduler.models.audit import Actor, ActorKind, AuditEntry, Source
from taskscheduler.store import tables

MAX_DETAIL = 500

__all__ = [
    "Actor",
    "ActorKind",
    "AuditEntry",
    "AuditSink",
    "DatabaseSink",
    "Source",
    "outcome_of",
    "query",
]


class AuditSink(Protocol):
    """Where audit entries go."""

    async def record(self, *entries: AuditEntry) -> None:
        """Append the entries (one, or those of a call that acted on many tasks); raise if
        they cannot be kept."""


class DatabaseSink:
    """Appends entries to ``taskscheduler.audit_log``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, *entries: AuditEntry) -> None:
        """Append the entries in one transaction of their own."""
        try:
            async with self.engine.begin() as conn:
                await append(conn, *entries)
        except OSError as exc:
            raise errors.PlatformUnavailable(f"cannot write the audit log: {exc}") from exc


async def append(conn: AsyncConnection, *entries: AuditEntry) -> None:
    """Append entries within the caller's transaction (e.g. with the token it concerns)."""
    rows = [entry.model_dump(exclude={"id", "at"}) for entry in entries]
    for values in rows:
        if values["detail"]:
            values["detail"] = values["detail"][:MAX_DETAIL]
    if rows:
        await conn.execute(insert(tables.audit_log), rows)


async def query(
    engine: AsyncEngine,
    *,
    actor: str | None = None,
    task: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Entries, newest first; ``actor`` matches the name or the token id."""
    log = tables.audit_log
    statement = select(log).order_by(log.c.id.desc()).limit(limit)
    if actor is not None:
        statement = statement.where((log.c.actor_name == actor) | (log.c.actor_id == actor))
    if task is not None:
        statement = statement.where(log.c.task == task)
    if action is not None:
        statement = statement.where(log.c.action == action)
    if since is not None:
        statement = statement.where(log.c.at >= since)
    if before_id is not None:
        statement = statement.where(log.c.id < before_id)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(statement)).mappings().all()
    except OSError as exc:
        raise errors.PlatformUnavailable(f"cannot read the audit log: {exc}") from exc
    return [AuditEntry.model_validate(dict(row)) for row in rows]


_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (errors.InvalidTask, "invalid"),
    (errors.TaskNotFound, "not_found"),
    (errors.JobNotFound, "not_found"),
    (errors.TokenNotFound, "not_found"),
    (errors.PermissionDenied, "forbidden"),
    (errors.TaskAlreadyExists, "conflict"),
    (errors.JobAlreadyStarted, "conflict"),
    (errors.JobAlreadyFinished, "conflict"),
    (errors.PlatformUnavailable, "unavailable"),
)


def outcome_of(exc: BaseException) -> str:
    """The outcome word of a refused or failed call."""
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return "error"
