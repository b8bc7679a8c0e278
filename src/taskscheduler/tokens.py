"""API tokens: random bearer secrets with a scope, shown once, stored only as a hash.

A token is ``tsk_`` + 32 random bytes (``secrets.token_urlsafe``). Only its SHA-256 is stored.
A slow password hash (bcrypt, argon2) exists to make guessing *low-entropy* secrets expensive;
a 256-bit random token cannot be guessed however fast the hash, so a plain SHA-256 loses
nothing, costs microseconds per request, and lets the database find a token by its hash
through a unique index instead of comparing secrets in Python.

Scopes are ordered, ``read`` < ``write`` < ``admin``: each includes the ones below it.
A revoked token is kept (for the audit trail) but never authenticates again.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid

from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler import audit, errors
from taskscheduler.models import UtcDateTime
from taskscheduler.store import tables

PREFIX = "tsk_"
NAME_PATTERN = r"^[\w.@:-][\w .@:-]{0,99}$"
BOOTSTRAP_NAME = "admin (TASKS_ADMIN_TOKEN)"

__all__ = [
    "NewToken",
    "Scope",
    "TokenInfo",
    "authenticate",
    "create",
    "ensure_bootstrap",
    "generate",
    "hash_token",
    "list_tokens",
    "revoke",
]


class Scope(enum.StrEnum):
    """What a token may do; each scope includes the ones below it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in read < write < admin."""
        return list(Scope).index(self)

    def allows(self, needed: Scope) -> bool:
        """Whether a token of this scope may make a call that needs ``needed``."""
        return self.rank >= needed.rank


class TokenInfo(BaseModel):
    """A token as it can be shown: never the secret, only a hint of its first characters."""

    id: str
    name: str
    scope: Scope
    hint: str = Field(description="The first characters of the token, to recognise it.")
    created_at: UtcDateTime
    created_by: str
    revoked_at: UtcDateTime | None = None
    revoked_by: str | None = None
    last_used_at: UtcDateTime | None = None

    @property
    def active(self) -> bool:
        """Whether the token still authenticates."""
        return self.revoked_at is None


class NewToken(BaseModel):
    """A token just created: the only time its secret is shown."""

    id: str
    name: str
    scope: Scope
    token: str = Field(description="The bearer token; store it now, it is not shown again.")


def generate() -> str:
    """A new random token."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token (see the module docstring for why SHA-256 is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _hint(token: str) -> str:
    return token[: len(PREFIX) + 4]


async def create(
    engine: AsyncEngine,
    *,
    name: str,
    scope: Scope,
    actor: audit.Actor,
    request_id: str | None = None,
) -> NewToken:
    """Create a token; the row and its audit entry are written in one transaction."""
    token = generate()
    token_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.tokens).values(
                id=token_id,
                name=name,
                scope=scope.value,
                token_hash=hash_token(token),
                hint=_hint(token),
                created_by=_who(actor),
            )
        )
        await audit.append(
            conn,
            audit.AuditEntry.of(
                actor,
                "token.create",
                "ok",
                detail=f"token {token_id} ({name!r}, scope {scope.value})",
                request_id=request_id,
            ),
        )
    return NewToken(id=str(token_id), name=name, scope=scope, token=token)


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
    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        parsed = None
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
                hint=_hint(token),
                created_by="start-up",
            )
        )


_MINUTE = func.make_interval(0, 0, 0, 0, 0, 1)


def _who(actor: audit.Actor) -> str:
    return f"token {actor.name} ({actor.id})" if actor.kind == "token" else actor.name


def _info(row: dict[str, object]) -> TokenInfo:
    row["id"] = str(row["id"])
    return TokenInfo.model_validate(row)
