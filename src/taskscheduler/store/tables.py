"""Our tables, as SQLAlchemy Core metadata (the migrations create them; code queries them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

SCHEMA = "taskscheduler"

metadata = MetaData(schema=SCHEMA)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("scope", Text, CheckConstraint("scope IN ('read', 'write', 'admin')"), nullable=False),
    # sha256 of the token: the token itself is never stored (see tokens.hash_token).
    Column("token_hash", Text, nullable=False, unique=True),
    Column("hint", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", Text),
    Column("last_used_at", DateTime(timezone=True)),
    # What its tasks may use (taskscheduler.grants); NULL, every one, only for admin tokens.
    Column("pools", ARRAY(Text)),
    Column("secrets", ARRAY(Text)),
    CheckConstraint(
        "(scope = 'admin') = (pools IS NULL) AND (scope = 'admin') = (secrets IS NULL)",
        name="tokens_grants",
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Column("actor_kind", Text, nullable=False),
    Column("actor_id", Text),
    Column("actor_name", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("task", Text),
    Column("job", Text),
    Column("outcome", Text, nullable=False),
    Column("detail", Text),
    Column("request_id", Text),
    Column("code_sha256_before", Text),
    Column("code_sha256_after", Text),
    Index("audit_log_at", "at"),
    Index("audit_log_task_at", "task", "at"),
    Index("audit_log_actor_at", "actor_name", "at"),
)
