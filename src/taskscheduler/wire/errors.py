"""Our errors on the wire, both ways, from one table.

The API answers each of our errors with its status code (``STATUS``) and a JSON body
(``body_of``): ``{"detail": "<str(error)>", "error": "<class name>"}``, or for an invalid field
a 422 like FastAPI's validation errors, ``{"detail": [{"loc", "msg", "type"}]}``. The client
turns such an answer back into the same class (``error_from``) with the same message, so
``except errors.TaskNotFound`` reads the same against the SDK and against the REST client.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from taskscheduler import errors

STATUS: tuple[tuple[type[errors.TaskSchedulerError], int], ...] = (
    (errors.InvalidTask, 422),
    (errors.TaskNotFound, 404),
    (errors.JobNotFound, 404),
    (errors.TokenNotFound, 404),
    (errors.NotAuthenticated, 401),
    (errors.PermissionDenied, 403),
    (errors.TaskAlreadyExists, 409),
    (errors.JobAlreadyStarted, 409),
    (errors.JobAlreadyFinished, 409),
    (errors.PlatformUnavailable, 503),
)
# What the client raises for a status whose body names none of our classes (the auth
# middleware's 401 and 403, a 404 of an unknown path, FastAPI's own errors).
BY_STATUS: dict[int, type[errors.TaskSchedulerError]] = {
    401: errors.NotAuthenticated,
    403: errors.PermissionDenied,
    503: errors.PlatformUnavailable,
}
# The classes whose message names one thing, and how to read it back from the message.
_NAMED: dict[type[errors.TaskSchedulerError], tuple[str, re.Pattern[str]]] = {
    errors.TaskNotFound: ("name", re.compile(r"^task (.+) not found$", re.S)),
    errors.TaskAlreadyExists: ("name", re.compile(r"^task (.+) already exists$", re.S)),
    errors.JobNotFound: ("job_id", re.compile(r"^job (\S+) not found$")),
    errors.TokenNotFound: ("token_id", re.compile(r"^token (\S+) not found$")),
}
_CLASSES: dict[str, type[errors.TaskSchedulerError]] = {
    kind.__name__: kind for kind, _ in STATUS
} | {errors.InvalidSchedule.__name__: errors.InvalidSchedule}


def status_of(exc: errors.TaskSchedulerError) -> int:
    """The status code of one of our errors."""
    for kind, code in STATUS:
        if isinstance(exc, kind):
            return code
    return 400


def body_of(exc: errors.TaskSchedulerError) -> dict[str, Any]:
    """The JSON body of one of our errors other than ``InvalidTask`` (a 422 naming its field)."""
    return {"detail": str(exc), "error": type(exc).__name__}


def invalid_body(loc: list[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    """The body of a 422 naming one field."""
    return {"detail": [{"loc": loc, "msg": msg, "type": kind}]}


def error_from(status: int, body: object) -> errors.TaskSchedulerError:
    """The error an API answer of ``status`` with JSON ``body`` stands for."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 422 and isinstance(detail, list) and detail:
        return _invalid(detail)
    message = detail if isinstance(detail, str) else f"the API answered {status}"
    named = body.get("error") if isinstance(body, dict) else None
    kind = _CLASSES.get(named) if isinstance(named, str) else None
    if kind is not None and status_of(_bare(kind, message)) == status:
        return _rebuild(kind, message)
    if status == 413:
        return errors.InvalidTask("body", message)
    if status in BY_STATUS:
        return _rebuild(BY_STATUS[status], message)
    return errors.ApiError(status, message)


def _invalid(detail: list[Any]) -> errors.InvalidTask:
    """An ``InvalidTask`` naming the first bad field (its path without body/query/path), and
    the others after it in the message."""
    fields: list[tuple[str, str]] = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc", []) if p is not None]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        fields.append((".".join(loc) or "request", str(item.get("msg", "invalid"))))
    if not fields:
        return errors.InvalidTask("request", "invalid")
    (field, reason), rest = fields[0], fields[1:]
    if rest:
        reason += "; " + "; ".join(f"{f}: {r}" for f, r in rest)
    return errors.InvalidTask(field, reason)


def _bare(kind: type[errors.TaskSchedulerError], message: str) -> errors.TaskSchedulerError:
    """An instance of ``kind`` carrying ``message`` as is, whatever its constructor takes."""
    exc = kind.__new__(kind)
    errors.TaskSchedulerError.__init__(exc, message)
    return exc


def _rebuild(kind: type[errors.TaskSchedulerError], message: str) -> errors.TaskSchedulerError:
    """``kind`` with the server's message, and the attribute it names when it can be read."""
    exc = _bare(kind, message)
    if kind in _NAMED:
        attribute, pattern = _NAMED[kind]
        match = pattern.match(message)
        if match:
            setattr(exc, attribute, _unquote(match.group(1)))
    return exc


def _unquote(text: str) -> str:
    """A name as ``repr`` wrote it (``'x'``), back to ``x``; anything else as is."""
    if text[:1] in ("'", '"'):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, str):
            return value
    return text
