"""One place that turns errors into HTTP responses.

Each leaf of ``taskscheduler.errors`` has one status code (``wire.errors``, shared with the
REST client, which maps the answers back to the same classes); invalid input is a 422 whose body
names each bad field like FastAPI's own validation errors; nothing a caller sends can produce
a 500 (an unexpected error still answers with a generic 500, logged with its request id).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskscheduler import audit, errors
from taskscheduler.api import refusal_limit, security_headers
from taskscheduler.wire import errors as wire_errors

log = logging.getLogger("taskscheduler.api")

# The table of status codes lives with the client's side of it (``wire.errors``).
STATUS = wire_errors.STATUS
status_of = wire_errors.status_of


def invalid(loc: list[str | int], msg: str, kind: str = "value_error") -> JSONResponse:
    """A 422 naming one field."""
    return JSONResponse(status_code=422, content=wire_errors.invalid_body(loc, msg, kind))


async def scheduler_error(request: Request, exc: Exception) -> JSONResponse:
    """One of our errors as a JSON answer with its status code."""
    assert isinstance(exc, errors.TaskSchedulerError)
    code = status_of(exc)
    if isinstance(exc, errors.InvalidTask):
        where = "query" if exc.field.split(".")[0] in request.query_params else "body"
        return invalid([where, *exc.field.split(".")], exc.reason)
    if code == 503:
        log.warning("request %s: %s", _request_id(request), exc)
    return JSONResponse(status_code=code, content=wire_errors.body_of(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            "msg": str(error.get("msg", "invalid")).removeprefix("Value error, "),
            "type": str(error.get("type", "value_error")),
        }
        for error in exc.errors()
    ]
    body = exc.body if isinstance(exc.body, dict) else {}
    await record_refusal(
        request, "invalid", "; ".join(_brief(d) for d in detail[:5]), task=_text(body.get("name"))
    )
    return JSONResponse(status_code=422, content={"detail": detail})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request %s failed", _request_id(request), exc_info=exc)
    return JSONResponse(
        status_code=500,
        content={"detail": f"internal error (request id {_request_id(request)})"},
        # Starlette answers this one outside every middleware, security headers included.
        headers=security_headers.EVERYWHERE,
    )


ANONYMOUS = audit.Actor(kind="anonymous", name="anonymous", source="api")
SUMMARY_ACTION = "refusals.summary"


async def record_refusal(
    request: Request, outcome: str, detail: str | None = None, *, task: str | None = None
) -> None:
    """Audit a state-changing call the API refused before the SDK saw it.

    An anonymous caller's refusals go through the app's ``refusal_limit.RefusalLimiter``: the
    first per address and outcome in a window is written (naming the address), the rest are
    counted into one summary row.
    """
    if request.method.upper() in ("GET", "HEAD", "OPTIONS"):
        return
    sink: audit.AuditSink | None = getattr(request.app.state, "audit_sink", None)
    if sink is None:
        return
    found = getattr(request.state, "principal", None)
    actor = found.actor if found is not None else ANONYMOUS
    if found is None:
        address = request.client.host if request.client else "unknown"
        limiter: refusal_limit.RefusalLimiter | None = getattr(
            request.app.state, "refusal_limiter", None
        )
        if limiter is not None:
            write, closed = limiter.admit(address, outcome)
            await record_summaries(sink, closed)
            if not write:
                return
        detail = f"from {address}: {detail}" if detail else f"from {address}"
    params: dict[str, Any] = dict(getattr(request.state, "path_params", {}) or {})
    entry = audit.AuditEntry.of(
        actor,
        getattr(request.state, "action", None) or f"{request.method} {request.url.path}"[:200],
        outcome,
        task=_text(params.get("name")) or task,
        job=_text(params.get("job_id")),
        detail=detail,
        request_id=_request_id(request),
    )
    try:
        await sink.record(entry)
    except Exception:
        log.exception("could not audit a refused request %s", _request_id(request))


async def record_summaries(sink: audit.AuditSink, summaries: list[refusal_limit.Summary]) -> None:
    """One audit row per address and outcome whose refusals were counted, not written."""
    for summary in summaries:
        detail = (
            f"from {summary.address}: {summary.count} more {summary.outcome} refusals in the"
            f" {summary.window_seconds:.0f} s after the one written in full (counted, not"
            " written one by one)"
        )
        entry = audit.AuditEntry.of(
            ANONYMOUS, SUMMARY_ACTION, summary.outcome, detail=detail, request_id=uuid.uuid4().hex
        )
        try:
            await sink.record(entry)
        except Exception:
            log.exception("could not audit %d refusals from %s", summary.count, summary.address)


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(errors.TaskSchedulerError, scheduler_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def _brief(detail: dict[str, Any]) -> str:
    return f"{'.'.join(str(p) for p in detail['loc'])}: {detail['msg']}"[:200]


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))
