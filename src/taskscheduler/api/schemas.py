"""Request and response bodies of the REST API that are not domain models.

Those the REST client reads too live in ``taskscheduler.wire.bodies`` and are re-exported here;
the task bodies, built from the domain model for FastAPI's validation, stay here.

Request bodies forbid unknown fields and are named like the CLI options. Task bodies carry only
field-level constraints; the cross-field rules (one schedule kind, code that parses, parameters
the entry function accepts) are the domain model's, checked by the SDK, so the API, the CLI and
the SDK refuse exactly the same definitions with the same field paths.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from taskscheduler import models
from taskscheduler.wire.bodies import (
    MAX_PAGE,
    AuditPage,
    ErrorBody,
    ErrorDetail,
    Health,
    JobPage,
    JobRef,
    Logs,
    Preview,
    RunBody,
    ScheduleBody,
    TaskList,
    TaskPage,
    TokenCreate,
    TokenGrant,
    ValidationErrorBody,
)

__all__ = [
    "MAX_PAGE",
    "AuditPage",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "JobPage",
    "JobRef",
    "Logs",
    "Preview",
    "RunBody",
    "ScheduleBody",
    "TaskBatch",
    "TaskCreate",
    "TaskList",
    "TaskPage",
    "TaskUpdate",
    "TokenCreate",
    "TokenGrant",
    "ValidationErrorBody",
    "decode_cursor",
    "encode_cursor",
]


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

TaskBatch: type[BaseModel] = create_model(
    "TaskBatch",
    __config__=ConfigDict(extra="forbid"),
    __doc__="New tasks, created together: all of them, or none if any is refused.",
    tasks=(list[TaskCreate], Field(min_length=1, max_length=models.MAX_NEW_TASKS)),
)


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
