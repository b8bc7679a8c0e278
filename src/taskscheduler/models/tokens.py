"""What an API token is as the API shows it: its scope and its public fields (never a hash).

The store (``taskscheduler.tokens``) keeps them in the database; the REST client reads them.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from taskscheduler import grants
from taskscheduler.models.fields import UtcDateTime

NAME_PATTERN = r"^[\w.@:-][\w .@:-]{0,99}$"


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
    pools: list[str] | None = Field(
        default=None, description="Work pools its tasks may use; null: every pool (admin)."
    )
    secrets: list[str] | None = Field(
        default=None, description="Secret blocks its tasks may name; null: every one (admin)."
    )

    @property
    def active(self) -> bool:
        """Whether the token still authenticates."""
        return self.revoked_at is None

    @property
    def grants(self) -> grants.Grants:
        """What its calls may use, for the SDK to check."""
        return grants.Grants(
            pools=None if self.pools is None else frozenset(self.pools),
            secrets=None if self.secrets is None else frozenset(self.secrets),
        )


class NewToken(BaseModel):
    """A token just created: the only time its secret is shown."""

    id: str
    name: str
    scope: Scope
    token: str = Field(description="The bearer token; store it now, it is not shown again.")
    pools: list[str] | None = Field(description="Work pools its tasks may use; null: every pool.")
    secrets: list[str] | None = Field(description="Secret blocks its tasks may name; null: all.")
