"""``/v1/audit``: read the audit log (read scope)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request

from taskscheduler import audit, errors
from taskscheduler.api import schemas
from taskscheduler.api.routes import ERRORS

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERRORS)

Text = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


@router.get("", response_model=schemas.AuditPage, name="audit.list")
async def read_audit(
    request: Request,
    actor: Text = None,
    task: Text = None,
    action: Text = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=schemas.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> schemas.AuditPage:
    """Entries newest first, filtered by actor (name or token id), task, action and time."""
    try:
        before = schemas.decode_cursor(cursor) or None
    except ValueError:
        raise errors.InvalidTask("cursor", "invalid cursor; use next_cursor as given") from None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    entries = await audit.query(
        request.app.state.engine,
        actor=actor,
        task=task,
        action=action,
        since=since,
        limit=limit + 1,
        before_id=before,
    )
    more = len(entries) > limit
    entries = entries[:limit]
    last = entries[-1].id if entries else None
    return schemas.AuditPage(
        items=entries, next_cursor=schemas.encode_cursor(last) if more and last else None
    )
