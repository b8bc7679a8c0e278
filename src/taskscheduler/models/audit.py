"""Who acted, and one row of the audit log as the API shows it (``taskscheduler.audit`` writes
and reads them; the REST client reads them too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from taskscheduler.models.fields import UtcDateTime

if TYPE_CHECKING:
    from taskscheduler.settings import Settings

ActorKind = Literal["token", "local", "anonymous", "job"]
Source = Literal["api", "cli", "sdk", "ui", "gateway"]


class Actor(BaseModel):
    """Who acts: an API token, the local user of the CLI or SDK, or a job (at the gateway)."""

    model_config = ConfigDict(frozen=True)

    kind: ActorKind
    id: str | None = Field(default=None, description="Token id, for token actors.")
    name: str = Field(description="Token name, or the local user name.")
    source: Source = "sdk"

    @classmethod
    def local(cls, settings: Settings, source: Source = "sdk") -> Actor:
        """The user running the CLI or SDK on this machine."""
        return cls(kind="local", name=settings.actor, source=source)


class AuditEntry(BaseModel):
    """One row of the audit log."""

    id: int | None = None
    at: UtcDateTime | None = None
    actor_kind: ActorKind
    actor_id: str | None = None
    actor_name: str
    source: Source
    action: str = Field(description="What was asked, e.g. task.create, job.cancel, token.revoke.")
    task: str | None = None
    job: str | None = None
    outcome: str = Field(
        description="ok, or why it was refused or failed: unauthorized, forbidden, invalid, "
        "not_found, conflict, unavailable, error."
    )
    detail: str | None = None
    request_id: str | None = None
    code_sha256_before: str | None = None
    code_sha256_after: str | None = None

    @classmethod
    def of(cls, actor: Actor, action: str, outcome: str, **fields: str | None) -> AuditEntry:
        """An entry for ``actor`` doing ``action``."""
        return cls(
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=actor.name,
            source=actor.source,
            action=action,
            outcome=outcome,
            **fields,
        )
