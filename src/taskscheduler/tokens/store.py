"""Tokens in our table: created, granted, listed, revoked, authenticated; each change audited."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler import audit, errors, grants, models
from taskscheduler.store import tables
from taskscheduler.tokens.model import (
    BOOTSTRAP_NAME,
    NewToken,
    Scope,
    TokenInfo,
    generate,
    hash_token,
    hint,
)


async def create(
    engine: AsyncEngine,
    *,
    name: str,
    scope: Scope,
    actor: audit.Actor,
    pools: Iterable[str] | None = None,
    secrets: Iterable[str] | None = None,
    request_id: str | None = None,
) -> NewToken:
    """Create a token; the row and its audit entry are written in one transaction.

    ``pools`` and ``secrets`` are what its tasks may use (default: ``grants.DEFAULT_POOLS``
    and no secret); an admin token may use everything, so it takes neither.
    """
    try:
        given_pools, given_secrets = _grant_lists(pools, secrets)
        if scope is Scope.ADMIN and (pools is not None or secrets is not None):
            raise errors.InvalidTask(
                "pools" if pools is not None else "secrets",
                "an admin token may use every pool and secret; grants are for other tokens",
            )
    except errors.InvalidTask as exc:
        await _refused(engine, actor, "token.create", exc, request_id)
        raise
    if scope is Scope.ADMIN:
        stored_pools, stored_secrets = None, None
    else:
        stored_pools = sorted(grants.DEFAULT_POOLS) if given_pools is None else given_pools
        stored_secrets = [] if given_secrets is None else given_secrets
    token = generate()
    token_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.tokens).values(
                id=token_id,
                name=name,
                scope=scope.value,
                token_hash=hash_token(token),
                hint=hint(token),
                created_by=_who(actor),
                pools=stored_pools,
                secrets=stored_secrets,
            )
        )
        await audit.append(
            conn,
            audit.AuditEntry.of(
                actor,
                "token.create",
                "ok",
                detail=f"token {token_id} ({name!r}, scope {scope.value}"
                f"{_describe(stored_pools, stored_secrets)})",
                request_id=request_id,
            ),
        )
    return NewToken(
        id=str(token_id),
        name=name,
        scope=scope,
        token=token,
        pools=stored_pools,
        secrets=stored_secrets,
    )


async def grant(
    engine: AsyncEngine,
    token_id: str,
    *,
    actor: audit.Actor,
    pools: Iterable[str] | None = None,
    secrets: Iterable[str] | None = None,
    request_id: str | None = None,
) -> TokenInfo:
    """Replace the pools, the secrets or both that a token's tasks may use (None: unchanged).

    Takes effect at the token's next call. Admin tokens may use everything, so they are
    refused; so are unknown ids. Every outcome is audited as ``token.grant``.
    """
    t = tables.tokens
    try:
        given_pools, given_secrets = _grant_lists(pools, secrets)
        if given_pools is None and given_secrets is None:
            raise errors.InvalidTask("token", "nothing to change: give pools or secrets")
    except errors.InvalidTask as exc:
        await _refused(engine, actor, "token.grant", exc, request_id, detail=f"token {token_id}")
        raise
    parsed = _uuid(token_id)
    problem: errors.TaskSchedulerError | None = None
    row = None
    async with engine.begin() as conn:
        if parsed is not None:
            found = (
                (await conn.execute(select(t).where(t.c.id == parsed).with_for_update()))
                .mappings()
                .first()
            )
            if found is not None and found["scope"] == Scope.ADMIN.value:
                problem = errors.InvalidTask(
                    "token", "an admin token may use every pool and secret already"
                )
            elif found is not None:
                values: dict[str, list[str]] = {}
                if given_pools is not None:
                    values["pools"] = given_pools
                if given_secrets is not None:
                    values["secrets"] = given_secrets
                row = (
                    (
                        await conn.execute(
                            update(t).where(t.c.id == parsed).values(**values).returning(*t.c)
                        )
                    )
                    .mappings()
                    .first()
                )
        if row is None and problem is None:
            problem = errors.TokenNotFound(token_id)
        detail = f"token {token_id}"
        if row is not None:
            detail = f"token {token_id} ({row['name']!r}{_describe(row['pools'], row['secrets'])})"
        await audit.append(
            conn,
            audit.AuditEntry.of(
                actor,
                "token.grant",
                audit.outcome_of(problem) if problem else "ok",
                detail=detail if problem is None else f"{detail}: {problem}",
                request_id=request_id,
            ),
        )
    if problem is not None:
        raise problem
    assert row is not None
    return _info(dict(row))


async def list_tokens(engine: AsyncEngine, *, include_revoked: bool = True) -> list[TokenInfo]:
    """Every token, newest first."""
    t = tables.tokens
    statement = select(t).order_by(t.c.created_at.desc())
    if not include_revoked:
        statement = statement.where(t.c.revoked_at.is_(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(statement)).mappings().all()
    return [_info(dict(row)) for row in rows]


async def revoke(
    engine: AsyncEngine, token_id: str, *, actor: audit.Actor, request_id: str | None = None
) -> TokenInfo:
    """Revoke a token for good (revoking twice is harmless); unknown ids are refused."""
    t = tables.tokens
    parsed = _uuid(token_id)
    async with engine.begin() as conn:
        row = None
        if parsed is not None:
            row = (
                (
                    await conn.execute(
                        update(t)
                        .where(t.c.id == parsed)
                        .values(
                            revoked_at=func.coalesce(t.c.revoked_at, func.now()),
                            revoked_by=func.coalesce(t.c.revoked_by, _who(actor)),
                        )
                        .returning(*t.c)
                    )
                )
                .mappings()
                .first()
            )
        outcome = "ok" if row is not None else "not_found"
        await audit.append(
            conn,
            audit.AuditEntry.of(
                actor, "token.revoke", outcome, detail=f"token {token_id}", request_id=request_id
            ),
        )
    if row is None:
        raise errors.TokenNotFound(token_id)
    return _info(dict(row))


async def authenticate(engine: AsyncEngine, token: str) -> TokenInfo | None:
    """The active token with this secret, or None (unknown and revoked alike)."""
    if not token or len(token) > 200:
        return None
    t = tables.tokens
    async with engine.begin() as conn:
        row = (
            (await conn.execute(select(t).where(t.c.token_hash == hash_token(token))))
            .mappings()
            .first()
        )
        if row is None or row["revoked_at"] is not None:
            return None
        # At most one write a minute per token, so busy clients do not turn reads into writes.
        await conn.execute(
            update(t)
            .where(t.c.id == row["id"])
            .where(t.c.last_used_at.is_(None) | (t.c.last_used_at < func.now() - _MINUTE))
            .values(last_used_at=func.now())
        )
    return _info(dict(row))


async def ensure_bootstrap(engine: AsyncEngine, token: str) -> None:
    """Register ``TASKS_ADMIN_TOKEN`` as an admin token, once.

    A bootstrap token that was revoked stays revoked: start-up never undoes an admin's
    decision. When the setting changes, the previous bootstrap token is revoked.
    """
    t = tables.tokens
    digest = hash_token(token)
    async with engine.begin() as conn:
        existing = (await conn.execute(select(t.c.id).where(t.c.token_hash == digest))).first()
        if existing is not None:
            return
        await conn.execute(
            update(t)
            .where(t.c.name == BOOTSTRAP_NAME)
            .where(t.c.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_by="start-up (TASKS_ADMIN_TOKEN changed)")
        )
        await conn.execute(
            insert(tables.tokens).values(
                id=uuid.uuid4(),
                name=BOOTSTRAP_NAME,
                scope=Scope.ADMIN.value,
                token_hash=digest,
                hint=hint(token),
                created_by="start-up",
            )
        )


_MINUTE = func.make_interval(0, 0, 0, 0, 0, 1)


def _uuid(token_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(token_id)
    except ValueError:
        return None


def _grant_lists(
    pools: Iterable[str] | None, secrets: Iterable[str] | None
) -> tuple[list[str] | None, list[str] | None]:
    """Pool and Secret block names as stored: checked, without repeats, sorted."""
    return (
        _names("pools", pools, models.POOL_PATTERN, "a work pool"),
        _names("secrets", secrets, models.SECRET_BLOCK_PATTERN, "a Secret block"),
    )


def _names(field: str, values: Iterable[str] | None, pattern: str, what: str) -> list[str] | None:
    if values is None:
        return None
    names = sorted(set(values))
    if len(names) > grants.MAX_GRANTS:
        raise errors.InvalidTask(field, f"at most {grants.MAX_GRANTS} names")
    for name in names:
        if not re.fullmatch(pattern, name):
            raise errors.InvalidTask(field, f"{name!r} does not name {what}")
    return names


def _describe(pools: list[str] | None, secrets: list[str] | None) -> str:
    """Grants in an audit detail (names only; never a secret's value, which no token holds)."""
    if pools is None and secrets is None:
        return ", every pool and secret"
    return f", pools [{', '.join(pools or [])}], secrets [{', '.join(secrets or [])}]"


async def _refused(
    engine: AsyncEngine,
    actor: audit.Actor,
    action: str,
    exc: errors.TaskSchedulerError,
    request_id: str | None,
    detail: str | None = None,
) -> None:
    entry = audit.AuditEntry.of(
        actor,
        action,
        audit.outcome_of(exc),
        detail=f"{detail}: {exc}" if detail else str(exc),
        request_id=request_id,
    )
    await audit.DatabaseSink(engine).record(entry)


def _who(actor: audit.Actor) -> str:
    return f"token {actor.name} ({actor.id})" if actor.kind == "token" else actor.name


def _info(row: dict[str, object]) -> TokenInfo:
    row["id"] = str(row["id"])
    return TokenInfo.model_validate(row)
