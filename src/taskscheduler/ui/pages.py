"""The routes of the web page: sign-in, task list, task form, task and job pages."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, ValidationError

from taskscheduler import audit, durations, errors, models, tokens
from taskscheduler.api import auth, schemas
from taskscheduler.api import errors as api_errors
from taskscheduler.api.routes import scheduler
from taskscheduler.services import history
from taskscheduler.ui import charts, figures

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PAGE = 50
MAX_LOG_LINES = 2000
SEARCH_PATTERN = r"^[\w.-]*$"

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, enable_async=False
    )
)


def _when(value: dt.datetime | None) -> str:
    """A time as people read it in a table: UTC, to the second."""
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_in(value: dt.datetime | None, zone: str) -> str:
    """A task's time on its own zone's wall clock, UTC beside it (UTC alone for UTC tasks)."""
    return "—" if value is None else durations.beside_utc(value, zone)


def _seconds(value: float | None) -> str:
    """A duration in seconds, short: 0.042 s, 12.3 s, 4 min 5 s."""
    if value is None:
        return "—"
    if abs(value) < 10:
        return f"{value:.3f} s"
    if abs(value) < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


def _duration(job: models.Job) -> float | None:
    if job.start_time is None:
        return None
    end = job.end_time or (None if job.state.is_final else dt.datetime.now(dt.UTC))
    return (end - job.start_time).total_seconds() if end else None


def _wall(value: dt.datetime | None, timezone: str) -> str:
    """A time as the wall clock of ``timezone`` shows it, for a ``datetime-local`` field."""
    if value is None:
        return ""
    return value.astimezone(zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M:%S")


templates.env.filters["when"] = _when
templates.env.filters["when_in"] = _when_in
templates.env.filters["wall"] = _wall
templates.env.filters["duration_text"] = durations.format_duration
templates.env.globals["policies"] = [p.value for p in models.ConcurrencyPolicy]
templates.env.filters["seconds"] = _seconds
templates.env.globals["duration"] = _duration
templates.env.filters["secs"] = charts.seconds_text


@functools.cache
def _zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


class _SignInFirst(Exception):
    """The page needs a signed-in session; go to the sign-in page and come back."""

    def __init__(self, back: str) -> None:
        self.back = back


async def viewer(request: Request) -> auth.Principal:
    """The token the session cookie holds, or off to the sign-in page."""
    secret = auth.session_token(request)
    token = await tokens.authenticate(request.app.state.engine, secret) if secret else None
    if token is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise _SignInFirst(back)
    principal = auth.Principal(token=token, actor=auth.actor_of(token, "ui"))
    request.state.principal = principal
    return principal


Viewer = Annotated[auth.Principal, Depends(viewer)]


def _render(
    request: Request, template: str, who: auth.Principal | None, status: int = 200, **context: Any
) -> HTMLResponse:
    settings = request.app.state.settings
    response: HTMLResponse = templates.TemplateResponse(
        request,
        template,
        {
            "who": who,
            "can_write": who is not None and who.token.scope.allows(tokens.Scope.WRITE),
            "prefect_ui": settings.prefect_ui_url,
            **context,
        },
        status_code=status,
    )
    return response


def _offset(cursor: str | None) -> int:
    try:
        return schemas.decode_cursor(cursor)
    except ValueError:
        return 0


def _next_cursor(found: list[Any], offset: int) -> str | None:
    return schemas.encode_cursor(offset + PAGE) if len(found) > PAGE else None


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only back into these pages (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/tasks"


@router.get("", name="ui.home")
async def home() -> RedirectResponse:
    """The task list is the home page."""
    return RedirectResponse("/ui/tasks", status_code=303)


@router.get("/signin", name="ui.signin")
async def signin_page(
    request: Request, next: Annotated[str | None, Query(max_length=500)] = None
) -> HTMLResponse:
    """Ask for a token (``tasks token create``); it goes into the session, never the URL."""
    return _render(request, "signin.html", None, next=_safe_next(next))


class SignIn(BaseModel):
    """The token a person signs in with."""

    token: str = Field(min_length=1, max_length=200)


@router.post("/session", name="ui.signin.post")
async def sign_in(request: Request) -> JSONResponse:
    """Check the token and keep it in an HttpOnly, SameSite=Strict cookie.

    The body is read here, after the same-origin check, rather than declared as a parameter:
    FastAPI reads and parses a declared body before the route (or any dependency) runs, and
    a cross-site caller must be refused without that (oversized bodies never get this far:
    ``api.body_limit``).
    """
    if not auth.same_origin(request):
        detail = "cross-site sign-in refused"
        await api_errors.record_refusal(request, "forbidden", detail)
        return JSONResponse(status_code=403, content={"detail": detail})
    body = await _sign_in_body(request)
    token = await tokens.authenticate(request.app.state.engine, body.token.strip())
    if token is None:
        await api_errors.record_refusal(request, "unauthorized", "unknown or revoked token")
        return JSONResponse(status_code=401, content={"detail": "unknown or revoked token"})
    sink: audit.AuditSink = request.app.state.audit_sink
    await sink.record(
        audit.AuditEntry.of(
            auth.actor_of(token, "ui"), "ui.signin", "ok", request_id=request.state.request_id
        )
    )
    response = JSONResponse({"name": token.name, "scope": token.scope.value})
    response.set_cookie(
        auth.SESSION_COOKIE,
        body.token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def _sign_in_body(request: Request) -> SignIn:
    """The sign-in form, with FastAPI's 422 answer when it is not one."""
    raw = await request.body()
    try:
        return SignIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)],
            body=raw[:200].decode(errors="replace"),
        ) from None


@router.post("/signout", name="ui.signout")
async def sign_out(request: Request) -> Response:
    """Forget the session (the token itself stays valid until revoked)."""
    if not auth.same_origin(request):
        return JSONResponse(status_code=403, content={"detail": "cross-site sign-out refused"})
    response = Response(status_code=204)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@router.get("/tasks", name="ui.tasks")
async def task_list(
    request: Request,
    who: Viewer,
    search: Annotated[str, Query(max_length=100, pattern=SEARCH_PATTERN)] = "",
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    fragment: bool = False,
) -> HTMLResponse:
    """One page of tasks by name, with schedule, next run and last job; searchable."""
    offset = _offset(cursor)
    found = await scheduler(request).list(
        limit=PAGE + 1, offset=offset, search=search or None, with_runs=True
    )
    return _render(
        request,
        "_task_rows.html" if fragment else "tasks.html",
        who,
        tasks=found[:PAGE],
        search=search,
        cursor=cursor,
        next_cursor=_next_cursor(found, offset),
        prev_cursor=schemas.encode_cursor(max(offset - PAGE, 0)) if offset else None,
    )


async def _pool_choice(request: Request, who: auth.Principal) -> dict[str, Any]:
    """The form's pool choice: only the pools the token may use (the API checks again), and
    where a task naming none goes (``Grants.default_pool``)."""
    settings = request.app.state.settings
    default = who.token.grants.default_pool(settings.default_pool, settings.token_default_pool)
    return {
        "pools": await scheduler(request).pools(),
        "default_pool": default,
        "default_allowed": who.token.grants.allows_pool(default),
    }


@router.get("/tasks/new", name="ui.task.new")
async def new_task(request: Request, who: Viewer) -> HTMLResponse:
    """The empty task form."""
    return _render(
        request,
        "task_form.html",
        who,
        task=None,
        spec=None,
        zones=_zones(),
        **await _pool_choice(request, who),
    )


@router.get("/tasks/{name}", name="ui.task")
async def task_page(
    request: Request,
    who: Viewer,
    name: str,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    fragment: bool = False,
) -> HTMLResponse:
    """A task, its actions, its last jobs' delays in a chart, and its jobs (newest first, a
    page at a time)."""
    ts = scheduler(request)
    offset = _offset(cursor)
    task = None if fragment else await ts.get(name)
    jobs = await ts.jobs(task=name, limit=PAGE + 1, offset=offset)
    chart: dict[str, Any] = {}
    if not fragment:
        timings = await history.task_timings(request.app.state.engine, name)
        chart = figures.task_context(timings)
    return _render(
        request,
        "_job_rows.html" if fragment else "task.html",
        who,
        task=task,
        name=name,
        cursor=cursor,
        jobs=jobs[:PAGE],
        next_cursor=_next_cursor(jobs, offset),
        prev_cursor=schemas.encode_cursor(max(offset - PAGE, 0)) if offset else None,
        **chart,
    )


@router.get("/platform", name="ui.platform")
async def platform_page(request: Request, who: Viewer) -> HTMLResponse:
    """Jobs started and their delays over the last hour, late and failed jobs, workers."""
    found = await history.platform_figures(request.app.state.settings, request.app.state.engine)
    return _render(request, "platform.html", who, **figures.platform_context(found))


@router.get("/tasks/{name}/edit", name="ui.task.edit")
async def edit_task(request: Request, who: Viewer, name: str) -> HTMLResponse:
    """The task form, filled in."""
    task = await scheduler(request).get(name)
    if task.spec is None:
        raise errors.InvalidTask(
            "name", f"{name!r} was not created here; change it where it was defined"
        )
    return _render(
        request,
        "task_form.html",
        who,
        task=task,
        spec=task.spec,
        zones=_zones(),
        **await _pool_choice(request, who),
    )


@router.get("/jobs/{job_id}", name="ui.job")
async def job_page(
    request: Request, who: Viewer, job_id: str, fragment: bool = False
) -> HTMLResponse:
    """A job: its state timeline, attempts and logs."""
    ts = scheduler(request)
    job = await ts.job(job_id)
    logs = await ts.logs(job_id, limit=MAX_LOG_LINES)
    return _render(request, "_job_live.html" if fragment else "job.html", who, job=job, logs=logs)


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _SignInFirst)
    if request.query_params.get("fragment"):
        return JSONResponse(status_code=401, content={"detail": "signed out"})
    return RedirectResponse(f"/ui/signin?next={quote(exc.back)}", status_code=303)


async def _error(request: Request, exc: Exception) -> Response:
    """One of our errors: on a page, a page with the API's status code; else the API's answer."""
    assert isinstance(exc, errors.TaskSchedulerError)
    if not request.url.path.startswith("/ui/"):
        return await api_errors.scheduler_error(request, exc)
    who = getattr(request.state, "principal", None)
    return _render(request, "error.html", who, status=api_errors.status_of(exc), message=str(exc))


def install(app: Any) -> None:
    """Route the sign-in redirect, and answer our errors on /ui with a page."""
    app.add_exception_handler(_SignInFirst, _sign_in_first)
    app.add_exception_handler(errors.TaskSchedulerError, _error)
