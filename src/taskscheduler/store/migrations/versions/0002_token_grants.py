"""Token grants: the work pools and Secret blocks each token's tasks may use.

Two text arrays on ``taskscheduler.tokens``: ``pools`` and ``secrets``. NULL means every pool
or block and is kept for admin tokens (the ``tokens_grants`` check makes it so: an admin token
has NULL in both, any other token a list in both).

Existing ``write`` tokens (and ``read`` ones, which change nothing either way) get
``{docker}`` and ``{}``: from this revision on they may create and run tasks only in the
``docker`` pool and name no Secret block until an admin grants more
(``PATCH /v1/tokens/{id}`` or ``tasks token grant``). That is the point of the revision, not a
side effect: before it, a write token could run code on the host (``process``, ``fast``) and
read any secret, which made it worth an admin token.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "taskscheduler"


def upgrade() -> None:
    op.add_column("tokens", sa.Column("pools", postgresql.ARRAY(sa.Text)), schema=SCHEMA)
    op.add_column("tokens", sa.Column("secrets", postgresql.ARRAY(sa.Text)), schema=SCHEMA)
    # The values as of this revision, not taskscheduler.grants.DEFAULT_POOLS: history stays put.
    tokens = sa.table(
        "tokens",
        sa.column("scope", sa.Text),
        sa.column("pools", postgresql.ARRAY(sa.Text)),
        sa.column("secrets", postgresql.ARRAY(sa.Text)),
        schema=SCHEMA,
    )
    op.execute(
        tokens.update().where(tokens.c.scope != "admin").values(pools=["docker"], secrets=[])
    )
    op.create_check_constraint(
        "tokens_grants",
        "tokens",
        "(scope = 'admin') = (pools IS NULL) AND (scope = 'admin') = (secrets IS NULL)",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint("tokens_grants", "tokens", schema=SCHEMA)
    op.drop_column("tokens", "secrets", schema=SCHEMA)
    op.drop_column("tokens", "pools", schema=SCHEMA)
