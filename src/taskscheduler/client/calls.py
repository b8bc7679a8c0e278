"""Each API call once, as data: method, path, query, body and how to read the answer.

``Client`` and ``AsyncClient`` only send these and hand back what ``finish`` makes of the
answer, so both speak to the API identically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_jsonable_python

from taskscheduler import errors, models
from taskscheduler.models.status import Snapshot
from taskscheduler.models.tokens import NewToken, Scope, TokenInfo
from taskscheduler.wire import bodies
from taskscheduler.wire.errors import error_from

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
M = TypeVar("M", bound=BaseModel)
Params = dict[str, str | int]
TaskInput = models.TaskSpec | Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Call(Generic[T_co]):
    """One request and how to read its answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T_co]
    params: Params | None = None
    body: Any = None
    # Statuses whose body is an answer, not an error (the health check's 503).
    answers: frozenset[int] = frozenset()


def finish(call: Call[T], response: httpx.Response) -> T:
    """The typed answer, or the error the API's answer stands for."""
    if response.is_error and response.status_code not in call.answers:
        try:
            body: object = response.json()
        except ValueError:
            body = None
        raise error_from(response.status_code, body)
    return call.read(response)


def _model(kind: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: kind.model_validate_json(response.content)


def _none(response: httpx.Response) -> None:
    return None


_TOKEN_LIST = TypeAdapter(list[TokenInfo])


def _tokens(response: httpx.Response) -> list[TokenInfo]:
    return _TOKEN_LIST.validate_json(response.content)


def _json(value: object) -> Any:
    return to_jsonable_python(value)


def _segment(value: str) -> str:
    """A path segment, escaped (ids come from callers; never let one reach another path)."""
    if not value:
        raise errors.InvalidTask("id", "must not be empty")
    return quote(value, safe="")


def _params(**values: object) -> Params:
    out: Params = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            out[key] = value.isoformat()
        elif isinstance(value, int):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def _task_body(task: TaskInput) -> Any:
    if isinstance(task, models.TaskSpec):
        return task.model_dump(mode="json", exclude_unset=True)
    return _json(dict(task))


# Tasks


def tasks_page(
    limit: int = 50, cursor: str | None = None, search: str | None = None
) -> Call[bodies.TaskPage]:
    """``GET /v1/tasks``: one page of tasks."""
    return Call(
        "GET",
        "/v1/tasks",
        _model(bodies.TaskPage),
        _params(limit=limit, cursor=cursor, search=search),
    )


def get_task(name: str) -> Call[models.Task]:
    """``GET /v1/tasks/{name}``."""
    return Call("GET", f"/v1/tasks/{_segment(name)}", _model(models.Task))


def create_task(task: TaskInput) -> Call[models.Task]:
    """``POST /v1/tasks``."""
    return Call("POST", "/v1/tasks", _model(models.Task), body=_task_body(task))


def create_tasks(tasks: Sequence[TaskInput]) -> Call[list[models.Task]]:
    """``POST /v1/tasks/bulk``: up to 500 tasks, created together or not at all."""
    return Call(
        "POST",
        "/v1/tasks/bulk",
        lambda response: bodies.TaskList.model_validate_json(response.content).items,
        body={"tasks": [_task_body(task) for task in tasks]},
    )


def update_task(name: str, changes: Mapping[str, Any]) -> Call[models.Task]:
    """``PATCH /v1/tasks/{name}``: the given fields only (a schedule field None removes it)."""
    return Call(
        "PATCH", f"/v1/tasks/{_segment(name)}", _model(models.Task), body=_json(dict(changes))
    )


def delete_task(name: str) -> Call[None]:
    """``DELETE /v1/tasks/{name}``."""
    return Call("DELETE", f"/v1/tasks/{_segment(name)}", _none)


def pause_task(name: str) -> Call[models.Task]:
    """``POST /v1/tasks/{name}/pause``."""
    return Call("POST", f"/v1/tasks/{_segment(name)}/pause", _model(models.Task))


def resume_task(name: str) -> Call[models.Task]:
    """``POST /v1/tasks/{name}/resume``."""
    return Call("POST", f"/v1/tasks/{_segment(name)}/resume", _model(models.Task))


def run_task(name: str, parameters: Mapping[str, Any] | None = None) -> Call[bodies.JobRef]:
    """``POST /v1/tasks/{name}/run``, with other parameters if given."""
    body = {"parameters": _json(dict(parameters))} if parameters is not None else {}
    return Call("POST", f"/v1/tasks/{_segment(name)}/run", _model(bodies.JobRef), body=body)


def schedule_task(name: str, at: dt.datetime) -> Call[bodies.JobRef]:
    """``POST /v1/tasks/{name}/schedule``: a one-off job at ``at``."""
    return Call(
        "POST",
        f"/v1/tasks/{_segment(name)}/schedule",
        _model(bodies.JobRef),
        body={"at": _json(at)},
    )


def add_jobs(name: str, jobs: models.NewJobs) -> Call[models.AddedJobs]:
    """``POST /v1/tasks/{name}/jobs/bulk``: up to 1,000 one-off jobs in one call."""
    return Call(
        "POST",
        f"/v1/tasks/{_segment(name)}/jobs/bulk",
        _model(models.AddedJobs),
        body=jobs.model_dump(mode="json", exclude_none=True),
    )


# Jobs


def jobs_page(
    task: str | None = None,
    state: models.JobState | str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Call[bodies.JobPage]:
    """``GET /v1/jobs``: one page of jobs, newest first."""
    state_value = models.JobState.parse(state).value if state is not None else None
    params = _params(task=task, state=state_value, limit=limit, cursor=cursor)
    return Call("GET", "/v1/jobs", _model(bodies.JobPage), params)


def get_job(job_id: str) -> Call[models.Job]:
    """``GET /v1/jobs/{id}``."""
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", _model(models.Job))


def job_logs(job_id: str, limit: int | None = None) -> Call[bodies.Logs]:
    """``GET /v1/jobs/{id}/logs``."""
    return Call(
        "GET", f"/v1/jobs/{_segment(job_id)}/logs", _model(bodies.Logs), _params(limit=limit)
    )


def cancel_job(job_id: str) -> Call[models.Job]:
    """``POST /v1/jobs/{id}/cancel``."""
    return Call("POST", f"/v1/jobs/{_segment(job_id)}/cancel", _model(models.Job))


def reschedule_job(job_id: str, at: dt.datetime) -> Call[bodies.JobRef]:
    """``POST /v1/jobs/{id}/reschedule``: the answer names the job that replaces it."""
    path = f"/v1/jobs/{_segment(job_id)}/reschedule"
    return Call("POST", path, _model(bodies.JobRef), body={"at": _json(at)})


# Schedules, tokens, audit, health


def preview(
    *,
    cron: str | None = None,
    every: str | None = None,
    at: str | dt.datetime | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
    start: str | dt.datetime | None = None,
    end: str | dt.datetime | None = None,
    count: int | None = None,
) -> Call[bodies.Preview]:
    """``GET /v1/schedules/preview``: the next run times of a schedule."""
    params = _params(
        cron=cron,
        every=every,
        at=at,
        rrule=rrule,
        timezone=timezone,
        start=start,
        end=end,
        count=count,
    )
    return Call("GET", "/v1/schedules/preview", _model(bodies.Preview), params)


def list_tokens() -> Call[list[TokenInfo]]:
    """``GET /v1/tokens`` (admin)."""
    return Call("GET", "/v1/tokens", _tokens)


def create_token(
    name: str,
    scope: Scope | str,
    *,
    pools: list[str] | None = None,
    secrets: list[str] | None = None,
) -> Call[NewToken]:
    """``POST /v1/tokens`` (admin): the answer holds the secret, once."""
    body: dict[str, Any] = {"name": name, "scope": Scope(scope).value}
    if pools is not None:
        body["pools"] = list(pools)
    if secrets is not None:
        body["secrets"] = list(secrets)
    return Call("POST", "/v1/tokens", _model(NewToken), body=body)


def grant_token(
    token_id: str, *, pools: list[str] | None = None, secrets: list[str] | None = None
) -> Call[TokenInfo]:
    """``PATCH /v1/tokens/{id}`` (admin): each given list replaces the old one."""
    body: dict[str, Any] = {}
    if pools is not None:
        body["pools"] = list(pools)
    if secrets is not None:
        body["secrets"] = list(secrets)
    return Call("PATCH", f"/v1/tokens/{_segment(token_id)}", _model(TokenInfo), body=body)


def revoke_token(token_id: str) -> Call[None]:
    """``DELETE /v1/tokens/{id}`` (admin)."""
    return Call("DELETE", f"/v1/tokens/{_segment(token_id)}", _none)


def audit_page(
    *,
    actor: str | None = None,
    task: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Call[bodies.AuditPage]:
    """``GET /v1/audit``: one page of entries, newest first."""
    params = _params(actor=actor, task=task, action=action, since=since, limit=limit, cursor=cursor)
    return Call("GET", "/v1/audit", _model(bodies.AuditPage), params)


def status() -> Call[Snapshot]:
    """``GET /v1/status``: the platform's health, pools, backlog and failures, taken now."""
    return Call("GET", "/v1/status", _model(Snapshot))


def health() -> Call[bodies.Health]:
    """``GET /healthz``: answers 503 with the same body when something is down."""
    return Call("GET", "/healthz", _model(bodies.Health), answers=frozenset({503}))
