"""The REST API's request and response bodies that are not domain models, shared by the API
(``api.schemas`` re-exports them) and the client."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from taskscheduler import grants, models
from taskscheduler.models.audit import AuditEntry
from taskscheduler.models.tokens import NAME_PATTERN as TOKEN_NAME_PATTERN
from taskscheduler.models.tokens import Scope

MAX_PAGE = 200


class ScheduleBody(BaseModel):
    """When to run a one-off job (ISO 8601; a time without zone is UTC)."""

    model_config = ConfigDict(extra="forbid")

    at: dt.datetime


class RunBody(BaseModel):
    """Run a task now, optionally with other arguments than its own."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, JsonValue] | None = None


class JobRef(BaseModel):
    """The job a call created."""

    job_id: str
    job: models.Job


PoolName = Annotated[str, StringConstraints(pattern=models.POOL_PATTERN)]
SecretBlockName = Annotated[str, StringConstraints(pattern=models.SECRET_BLOCK_PATTERN)]
Pools = Annotated[list[PoolName] | None, Field(max_length=grants.MAX_GRANTS)]
SecretBlocks = Annotated[list[SecretBlockName] | None, Field(max_length=grants.MAX_GRANTS)]


class TokenCreate(BaseModel):
    """A new API token; ``pools`` and ``secrets`` are for non-admin tokens only."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOKEN_NAME_PATTERN, description="What the token is for.")
    scope: Scope
    pools: Pools = Field(
        default=None, description="Work pools its tasks may use (default: docker only)."
    )
    secrets: SecretBlocks = Field(
        default=None, description="Secret blocks its tasks may name (default: none)."
    )


class TokenGrant(BaseModel):
    """New grants of a non-admin token; each given list replaces the old one."""

    model_config = ConfigDict(extra="forbid")

    pools: Pools = Field(
        default=None, description="Work pools its tasks may use from now on; null: unchanged."
    )
    secrets: SecretBlocks = Field(
        default=None, description="Secret blocks its tasks may name from now on; null: unchanged."
    )


class TaskPage(BaseModel):
    """One page of tasks; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[models.Task]
    next_cursor: str | None


class TaskList(BaseModel):
    """Tasks, in the order they were asked for."""

    items: list[models.Task]


class JobPage(BaseModel):
    """One page of jobs, newest scheduled time first."""

    items: list[models.Job]
    next_cursor: str | None


class AuditPage(BaseModel):
    """One page of audit entries, newest first."""

    items: list[AuditEntry]
    next_cursor: str | None


class Logs(BaseModel):
    """A job's log lines, oldest first."""

    items: list[models.LogLine]


class ErrorDetail(BaseModel):
    """One problem with the request, like FastAPI's validation errors."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: each field that is wrong, with its path."""

    detail: list[ErrorDetail]


class ErrorBody(BaseModel):
    """Any other error: one sentence, and the name of our error class when it is one of ours."""

    detail: str
    error: str | None = Field(
        default=None,
        description="The class in taskscheduler.errors, e.g. TaskNotFound; absent otherwise.",
    )


class Health(BaseModel):
    """Whether the Prefect server and the database answer."""

    status: str
    prefect: str
    database: str


class Preview(BaseModel):
    """What a schedule means: one line, and its next run times in UTC and in its zone."""

    schedule: str | None
    timezone: str
    next: list[models.UtcDateTime]
    next_local: list[str] = Field(description="The same times, ISO 8601 in the schedule's zone.")
