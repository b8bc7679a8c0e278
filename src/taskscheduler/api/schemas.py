"""Request and response bodies of the REST API that are not domain models.

Request bodies forbid unknown fields and are named like the CLI options. Task bodies carry only
field-level constraints; the cross-field rules (one schedule kind, code that parses, parameters
the entry function accepts) are the domain model's, checked by the SDK, so the API, the CLI and
the SDK refuse exactly the same definitions with the same field paths.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, create_model
from pydantic.fields import FieldInfo

from taskscheduler import grants, models, tokens
from taskscheduler.audit import AuditEntry
from taskscheduler.sdk import LogLine

MAX_PAGE = 200


def _optional(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """A field of ``TaskSpec`` made optional with no default, keeping its constraints."""
    copy = FieldInfo.merge_field_infos(info)
    copy.default, copy.default_factory = None, None
    annotation: Any = info.annotation
    return annotation | None, copy


_FIELDS = {name: (info.annotation, info) for name, info in models.TaskSpec.model_fields.items()}

TaskCreate: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "TaskCreate",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A new task: the task model's fields, named like the CLI options.",
    **_FIELDS,
)
TaskUpdate: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "TaskUpdate",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Fields to change; a schedule field set to null removes the schedule.",
    **{name: _optional(info) for name, info in models.TaskSpec.model_fields.items()},
)


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

    name: str = Field(pattern=tokens.NAME_PATTERN, description="What the token is for.")
    scope: tokens.Scope
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

    items: list[LogLine]


class ErrorDetail(BaseModel):
    """One problem with the request, like FastAPI's validation errors."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: each field that is wrong, with its path."""

    detail: list[ErrorDetail]


class ErrorBody(BaseModel):
    """Any other error: one sentence."""

    detail: str


class Health(BaseModel):
    """Whether the Prefect server and the database answer."""

    status: str
    prefect: str
    database: str


def encode_cursor(offset: int) -> str:
    """An opaque cursor for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The offset of a cursor; ``ValueError`` if it was not made by ``encode_cursor``."""
    if not cursor:
        return 0
    if not cursor.replace("-", "").replace("_", "").isalnum() or not cursor.isascii():
        raise ValueError("invalid cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    kind, _, number = text.partition(":")
    if kind != "o" or not number.isdigit() or len(number) > 9:
        raise ValueError("invalid cursor")
    return int(number)
