"""A task as the platform holds it: its spec plus what Prefect knows of it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from taskscheduler.models.fields import UtcDateTime
from taskscheduler.models.jobs import Job
from taskscheduler.models.spec import TaskSpec

# The most tasks one call creates together (one transaction of the Prefect server).
MAX_NEW_TASKS = 500


class CodeVersion(BaseModel):
    """One stored version of a task's code (a block document)."""

    version: int
    sha256: str
    created: UtcDateTime | None = None


class Task(BaseModel):
    """A task as the platform holds it: the spec plus what Prefect knows about it."""

    id: str = Field(description="The deployment id.")
    deployment_id: str
    name: str
    flow: str
    managed: bool = Field(description="Whether this platform created it (versus prefect deploy).")
    spec: TaskSpec | None = Field(description="The definition; None for foreign deployments.")
    schedule: str | None = Field(description="Human-readable schedule.")
    paused: bool
    pool: str | None
    tags: list[str]
    version: int | None = None
    code_sha256: str | None = None
    created: UtcDateTime | None = None
    updated: UtcDateTime | None = None
    next_runs: list[UtcDateTime] = Field(default_factory=list)
    last_job: Job | None = None
    versions: list[CodeVersion] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def timezone(self) -> str:
        """The zone its schedule is read in, to show its times where its people live (the
        times themselves stay ISO 8601 UTC)."""
        return self.spec.timezone if self.spec is not None else "UTC"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def state(self) -> Literal["active", "paused"]:
        """Whether the schedule is running."""
        return "paused" if self.paused else "active"
