"""API tokens and the append-only audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "taskscheduler"


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("hint", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.Text),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("scope IN ('read', 'write', 'admin')", name="tokens_scope"),
        schema=SCHEMA,
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
        sa.Column("actor_kind", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Text),
        sa.Column("actor_name", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("task", sa.Text),
        sa.Column("job", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("code_sha256_before", sa.Text),
        sa.Column("code_sha256_after", sa.Text),
        schema=SCHEMA,
    )
    op.create_index("audit_log_at", "audit_log", ["at"], schema=SCHEMA)
    op.create_index("audit_log_task_at", "audit_log", ["task", "at"], schema=SCHEMA)
    op.create_index("audit_log_actor_at", "audit_log", ["actor_name", "at"], schema=SCHEMA)
    # Append-only in the database itself: no UPDATE, DELETE or TRUNCATE by any client of it,
    # so "rows cannot be changed through the product" does not rest on the product's code.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.audit_log_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_log_no_update_or_delete
        BEFORE UPDATE OR DELETE ON {SCHEMA}.audit_log
        FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.audit_log_append_only()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_log_no_truncate
        BEFORE TRUNCATE ON {SCHEMA}.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.audit_log_append_only()
        """
    )


def downgrade() -> None:
    op.drop_table("audit_log", schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.audit_log_append_only()")
    op.drop_table("tokens", schema=SCHEMA)
