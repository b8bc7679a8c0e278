"""The API's routers, one per resource; each route's ``name`` is its audit action."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from taskscheduler.api import auth, schemas
from taskscheduler.sdk import AsyncTaskScheduler

# Documented on every /v1 route, so clients (and the schema fuzz test) know them.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.ErrorBody, "description": "No token, or an unknown or revoked one."},
    403: {
        "model": schemas.ErrorBody,
        "description": "The token's scope, or its work pools and secrets, do not allow this.",
    },
    413: {"model": schemas.ErrorBody, "description": "The body is over TASKS_MAX_BODY_BYTES."},
    503: {"model": schemas.ErrorBody, "description": "Prefect or the database is unreachable."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorBody, "description": "No such task, job or token."}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": schemas.ErrorBody, "description": "The call conflicts with the current state."}
}
# Task names on paths: ours (lowercase slugs) and deployments made with `prefect deploy`.
NAME_PATH_PATTERN = r"^[A-Za-z0-9][\w.-]{0,199}$"


def scheduler(request: Request) -> AsyncTaskScheduler:
    """The SDK acting as the request's token, with its grants, recording into the app's audit
    log (the web page's routes use it too, so page and API refuse the same calls)."""
    caller = auth.principal(request)
    return AsyncTaskScheduler(
        request.app.state.settings,
        actor=caller.actor,
        grants=caller.token.grants,
        audit_sink=request.app.state.audit_sink,
        request_id=request.state.request_id,
        connection=request.app.state.prefect,
    )
