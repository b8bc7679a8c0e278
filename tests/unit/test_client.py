"""The REST client against ``httpx.MockTransport`` standing in for the API: what each call
sends, what it reads back, how errors come back as our classes, paging, waiting, config."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskscheduler import errors, models
from taskscheduler.client import AsyncClient, Client, config
from taskscheduler.models.tokens import Scope
from taskscheduler.wire import bodies
from taskscheduler.wire import errors as wire_errors

URL = "http://api.test:8000"
TOKEN = "tsk_secret"
NOW = "2026-01-02T03:04:05Z"
Handler = Callable[[httpx.Request], httpx.Response]


def job_json(job_id: str = "j1", state: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": f"run-{job_id}",
        "task": "hello",
        "state": state,
        "state_name": state.title(),
        "scheduled_time": NOW,
        **extra,
    }


def task_json(name: str = "hello") -> dict[str, Any]:
    return {
        "id": f"d-{name}",
        "deployment_id": f"d-{name}",
        "name": name,
        "flow": "taskscheduler-task",
        "managed": True,
        "spec": {"name": name, "code": "def main():\n    pass\n", "every": 600},
        "schedule": "every 10m",
        "paused": False,
        "pool": "process",
        "tags": [],
        "next_runs": [NOW],
    }


def token_json(token_id: str = "t1") -> dict[str, Any]:
    return {
        "id": token_id,
        "name": "ci",
        "scope": "read",
        "hint": "tsk_abcd",
        "created_at": NOW,
        "created_by": "alice",
        "pools": ["docker"],
        "secrets": [],
    }


class Server:
    """Answers with ``handler`` and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def client(self, token: str | None = TOKEN, tmp: Path | None = None) -> Client:
        return Client(
            URL,
            token,
            http_transport=httpx.MockTransport(self),
            config_path=(tmp or Path("/nonexistent")) / "client.json",
        )

    def aclient(self) -> AsyncClient:
        return AsyncClient(
            URL,
            TOKEN,
            http_transport=httpx.MockTransport(self),
            config_path=Path("/nonexistent/client.json"),
        )


def answer(status: int, body: Any = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status) if body is None else httpx.Response(status, json=body)

    return handle


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


AT = dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
JOB_REF = {"job_id": "j9", "job": job_json("j9")}
PAGE = {"items": [], "next_cursor": None}
# (call, method, path, query, body, answer status, answer body, type of the result)
CALLS: list[tuple[str, Callable[[Client], Any], str, str, dict[str, str], Any, int, Any, Any]] = [
    (
        "get",
        lambda c: c.get("hello"),
        "GET",
        "/v1/tasks/hello",
        {},
        None,
        200,
        task_json(),
        models.Task,
    ),
    (
        "create",
        lambda c: c.create({"name": "hello", "code": "def main(): pass", "every": "10m"}),
        "POST",
        "/v1/tasks",
        {},
        {"name": "hello", "code": "def main(): pass", "every": "10m"},
        201,
        task_json(),
        models.Task,
    ),
    (
        "create-spec",
        lambda c: c.create(
            models.TaskSpec(name="hello", code="def main():\n    pass\n", every="10m")
        ),
        "POST",
        "/v1/tasks",
        {},
        {"name": "hello", "code": "def main():\n    pass\n", "every": 600.0},
        201,
        task_json(),
        models.Task,
    ),
    (
        "update",
        lambda c: c.update("hello", {"cron": None, "retries": 2}),
        "PATCH",
        "/v1/tasks/hello",
        {},
        {"cron": None, "retries": 2},
        200,
        task_json(),
        models.Task,
    ),
    (
        "delete",
        lambda c: c.delete("hello"),
        "DELETE",
        "/v1/tasks/hello",
        {},
        None,
        204,
        None,
        type(None),
    ),
    (
        "pause",
        lambda c: c.pause("hello"),
        "POST",
        "/v1/tasks/hello/pause",
        {},
        None,
        200,
        task_json(),
        models.Task,
    ),
    (
        "resume",
        lambda c: c.resume("hello"),
        "POST",
        "/v1/tasks/hello/resume",
        {},
        None,
        200,
        task_json(),
        models.Task,
    ),
    (
        "run",
        lambda c: c.run("hello"),
        "POST",
        "/v1/tasks/hello/run",
        {},
        {},
        201,
        JOB_REF,
        models.Job,
    ),
    (
        "run-params",
        lambda c: c.run("hello", {"who": "x", "n": [1, 2]}),
        "POST",
        "/v1/tasks/hello/run",
        {},
        {"parameters": {"who": "x", "n": [1, 2]}},
        201,
        JOB_REF,
        models.Job,
    ),
    (
        "schedule",
        lambda c: c.schedule("hello", AT),
        "POST",
        "/v1/tasks/hello/schedule",
        {},
        {"at": "2030-05-06T07:08:09Z"},
        201,
        JOB_REF,
        models.Job,
    ),
    (
        "tasks_page",
        lambda c: c.tasks_page(limit=5, cursor="abc", search="hel"),
        "GET",
        "/v1/tasks",
        {"limit": "5", "cursor": "abc", "search": "hel"},
        None,
        200,
        {"items": [task_json()], "next_cursor": "n"},
        bodies.TaskPage,
    ),
    (
        "jobs_page",
        lambda c: c.jobs_page(task="hello", state=models.JobState.FAILED, limit=3),
        "GET",
        "/v1/jobs",
        {"task": "hello", "state": "failed", "limit": "3"},
        None,
        200,
        PAGE,
        bodies.JobPage,
    ),
    ("job", lambda c: c.job("j/1"), "GET", "/v1/jobs/j%2F1", {}, None, 200, job_json(), models.Job),
    (
        "logs",
        lambda c: c.logs("j1", limit=10),
        "GET",
        "/v1/jobs/j1/logs",
        {"limit": "10"},
        None,
        200,
        {"items": [{"timestamp": NOW, "level": "INFO", "logger": "x", "message": "hi"}]},
        list,
    ),
    (
        "cancel",
        lambda c: c.cancel("j1"),
        "POST",
        "/v1/jobs/j1/cancel",
        {},
        None,
        200,
        job_json(state="cancelled"),
        models.Job,
    ),
    (
        "reschedule",
        lambda c: c.reschedule("j1", AT),
        "POST",
        "/v1/jobs/j1/reschedule",
        {},
        {"at": "2030-05-06T07:08:09Z"},
        200,
        JOB_REF,
        models.Job,
    ),
    (
        "preview",
        lambda c: c.preview(cron="0 * * * *", timezone="Europe/Paris", count=2),
        "GET",
        "/v1/schedules/preview",
        {"cron": "0 * * * *", "timezone": "Europe/Paris", "count": "2"},
        None,
        200,
        {"schedule": "hourly", "timezone": "Europe/Paris", "next": [NOW], "next_local": [NOW]},
        bodies.Preview,
    ),
    ("tokens", lambda c: c.tokens(), "GET", "/v1/tokens", {}, None, 200, [token_json()], list),
    (
        "create_token",
        lambda c: c.create_token("ci", Scope.WRITE, pools=["docker", "process"]),
        "POST",
        "/v1/tokens",
        {},
        {"name": "ci", "scope": "write", "pools": ["docker", "process"]},
        201,
        {
            "id": "t2",
            "name": "ci",
            "scope": "write",
            "token": "tsk_new",
            "pools": ["docker"],
            "secrets": [],
        },
        models.tokens.NewToken,
    ),
    (
        "grant_token",
        lambda c: c.grant_token("t1", secrets=["db"]),
        "PATCH",
        "/v1/tokens/t1",
        {},
        {"secrets": ["db"]},
        200,
        token_json(),
        models.tokens.TokenInfo,
    ),
    (
        "revoke_token",
        lambda c: c.revoke_token("t1"),
        "DELETE",
        "/v1/tokens/t1",
        {},
        None,
        204,
        None,
        type(None),
    ),
    (
        "audit_page",
        lambda c: c.audit_page(actor="alice", since=AT, limit=7),
        "GET",
        "/v1/audit",
        {"actor": "alice", "since": "2030-05-06T07:08:09+00:00", "limit": "7"},
        None,
        200,
        {
            "items": [
                {
                    "actor_kind": "token",
                    "actor_name": "ci",
                    "source": "api",
                    "action": "task.create",
                    "outcome": "ok",
                }
            ],
            "next_cursor": None,
        },
        bodies.AuditPage,
    ),
    (
        "add_jobs",
        lambda c: c.add_jobs(
            "report", {"jobs": [{"at": AT, "parameters": {"n": 1}}, {"at": AT}], "key": "k1"}
        ),
        "POST",
        "/v1/tasks/report/jobs/bulk",
        {},
        {
            "jobs": [
                {"at": "2030-05-06T07:08:09Z", "parameters": {"n": 1}},
                {"at": "2030-05-06T07:08:09Z"},
            ],
            "key": "k1",
        },
        201,
        {"task": "report", "job_ids": ["j1", "j2"], "created": 2},
        models.AddedJobs,
    ),
    (
        "health",
        lambda c: c.health(),
        "GET",
        "/healthz",
        {},
        None,
        200,
        {"status": "ok", "prefect": "ok", "database": "ok"},
        bodies.Health,
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "path", "query", "sent", "status", "reply", "kind"),
    [case[1:] for case in CALLS],
    ids=[case[0] for case in CALLS],
)
def test_each_call_sends_its_request_with_the_token_and_reads_a_typed_answer(
    call: Callable[[Client], Any],
    method: str,
    path: str,
    query: dict[str, str],
    sent: Any,
    status: int,
    reply: Any,
    kind: type,
) -> None:
    server = Server(answer(status, reply))
    with server.client() as client:
        result = call(client)
    request = server.last
    assert len(server.requests) == 1
    assert request.method == method
    assert request.url.raw_path.decode().split("?")[0] == path
    assert dict(request.url.params) == query
    assert body_of(request) == sent
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert isinstance(result, kind)


def test_answers_are_parsed_into_the_servers_models() -> None:
    server = Server(answer(201, JOB_REF))
    with server.client() as client:
        job = client.run("hello")
    assert job.id == "j9" and job.state is models.JobState.PENDING
    assert job.scheduled_time == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    server = Server(answer(200, [token_json()]))
    with server.client() as client:
        (token,) = client.tokens()
    assert token.scope is Scope.READ and token.grants.pools == frozenset({"docker"})


def test_health_reads_a_503_as_an_answer_not_an_error() -> None:
    down = {"status": "unavailable", "prefect": "ok", "database": "unavailable: OSError"}
    with Server(answer(503, down)).client(token=None) as client:
        health = client.health()
    assert health.status == "unavailable" and health.database.startswith("unavailable")


def test_no_token_no_authorization_header() -> None:
    server = Server(answer(200, {"status": "ok", "prefect": "ok", "database": "ok"}))
    with server.client(token=None) as client:
        client.health()
    assert "authorization" not in server.last.headers


# Errors: what the API's handlers answer for each of our errors comes back as the same class.

RAISED: list[errors.TaskSchedulerError] = [
    errors.TaskNotFound("hello"),
    errors.TaskNotFound("it's"),
    errors.JobNotFound("6a1f"),
    errors.TokenNotFound("t1"),
    errors.TaskAlreadyExists("hello"),
    errors.JobAlreadyStarted("6a1f", "running"),
    errors.JobAlreadyFinished("6a1f", "completed"),
    errors.PermissionDenied("the token may not use work pool 'process'"),
    errors.PlatformUnavailable("cannot reach Prefect"),
]


@pytest.mark.parametrize("raised", RAISED, ids=lambda e: f"{type(e).__name__}")
def test_each_error_body_comes_back_as_the_same_class_and_message(
    raised: errors.TaskSchedulerError,
) -> None:
    status = wire_errors.status_of(raised)
    server = Server(answer(status, wire_errors.body_of(raised)))
    with server.client() as client, pytest.raises(errors.TaskSchedulerError) as caught:
        client.get("hello")
    assert type(caught.value) is type(raised)
    assert str(caught.value) == str(raised)
    for attribute in ("name", "job_id", "token_id"):
        if hasattr(raised, attribute):
            assert getattr(caught.value, attribute) == getattr(raised, attribute)


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            401,
            {"detail": "not authenticated: unknown or revoked token"},
            errors.NotAuthenticated,
            "not authenticated: unknown or revoked token",
        ),
        (
            403,
            {"detail": "this call needs scope write; the token has read"},
            errors.PermissionDenied,
            "this call needs scope write; the token has read",
        ),
        (
            422,
            {
                "detail": [
                    {"loc": ["body", "retries"], "msg": "must be at most 10", "type": "value_error"}
                ]
            },
            errors.InvalidTask,
            "retries: must be at most 10",
        ),
        (
            422,
            {
                "detail": [
                    {"loc": ["body", "cron"], "msg": "bad", "type": "x"},
                    {"loc": ["query", "limit"], "msg": "too big", "type": "y"},
                ]
            },
            errors.InvalidTask,
            "cron: bad; limit: too big",
        ),
        (
            413,
            {"detail": "the body is over 1048576 bytes"},
            errors.InvalidTask,
            "body: the body is over 1048576 bytes",
        ),
        (404, {"detail": "Not Found"}, errors.ApiError, "Not Found (HTTP 404)"),
        (
            500,
            {"detail": "internal error (request id 1)"},
            errors.ApiError,
            "internal error (request id 1) (HTTP 500)",
        ),
        (503, {"detail": "down"}, errors.PlatformUnavailable, "down"),
        # A body naming a class whose status is not this one is not believed.
        (500, {"detail": "x", "error": "TaskNotFound"}, errors.ApiError, "x (HTTP 500)"),
    ],
)
def test_statuses_without_a_class_name_map_by_status(
    status: int, body: Any, kind: type[Exception], message: str
) -> None:
    with Server(answer(status, body)).client() as client, pytest.raises(kind) as caught:
        client.get("hello")
    assert type(caught.value) is kind and str(caught.value) == message


def test_an_invalid_field_is_named_like_the_sdk_names_it() -> None:
    body = {"detail": [{"loc": ["body", "notify", "0"], "msg": "bad address", "type": "v"}]}
    with Server(answer(422, body)).client() as client, pytest.raises(errors.InvalidTask) as caught:
        client.create({"name": "x"})
    assert caught.value.field == "notify.0" and caught.value.reason == "bad address"


def test_a_non_json_error_answer_is_an_api_error_with_its_status() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with Server(html).client() as client, pytest.raises(errors.ApiError) as caught:
        client.get("hello")
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("connection refused"), httpx.ReadTimeout("read timed out")]
)
def test_a_connection_failure_names_the_url(failure: httpx.TransportError) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    with Server(fail).client() as client, pytest.raises(errors.ApiUnreachable) as caught:
        client.get("hello")
    assert isinstance(caught.value, errors.PlatformUnavailable)
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.url == URL
    assert URL in str(caught.value) and str(failure) in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_the_api_handlers_and_the_client_agree_on_every_error() -> None:
    """The real exception handlers of ``taskscheduler.api`` answer; the async client reads."""
    from fastapi import FastAPI

    from taskscheduler.api import errors as api_errors

    app = FastAPI()
    api_errors.install(app)
    raised: list[errors.TaskSchedulerError] = [
        *RAISED,
        errors.InvalidTask("retries", "must be at most 10"),
        errors.InvalidSchedule("cron", "not a cron expression"),
    ]

    @app.get("/v1/tasks/{name}")
    async def boom(name: str) -> None:
        raise raised[int(name)]

    transport = httpx.ASGITransport(app=app)
    async with AsyncClient(
        "http://asgi", TOKEN, http_transport=transport, config_path=Path("/nonexistent")
    ) as client:
        for index, exc in enumerate(raised):
            with pytest.raises(errors.TaskSchedulerError) as caught:
                await client.get(str(index))
            expected = errors.InvalidTask if isinstance(exc, errors.InvalidTask) else type(exc)
            assert type(caught.value) is expected, exc
            assert str(caught.value) == str(exc)


# Paging


def paged(items: list[dict[str, Any]]) -> Handler:
    """Pages of ``limit`` items with cursors that are offsets in text."""

    def handle(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params.get("cursor", "0"))
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        cursor = str(offset + limit) if more else None
        return httpx.Response(200, json={"items": page, "next_cursor": cursor})

    return handle


def test_list_follows_the_cursors_to_the_last_page() -> None:
    tasks = [task_json(f"t{i}") for i in range(450)]
    server = Server(paged(tasks))
    with server.client() as client:
        found = client.list(search="t")
    assert [t.name for t in found] == [f"t{i}" for i in range(450)]
    assert [r.url.params.get("cursor") for r in server.requests] == [None, "200", "400"]
    assert {r.url.params["search"] for r in server.requests} == {"t"}
    assert {r.url.params["limit"] for r in server.requests} == {str(bodies.MAX_PAGE)}


def test_a_limit_stops_paging_and_sizes_the_pages() -> None:
    jobs = [job_json(f"j{i}") for i in range(30)]
    server = Server(paged(jobs))
    with server.client() as client:
        found = client.jobs(task="hello", limit=12)
    assert [j.id for j in found] == [f"j{i}" for i in range(12)]
    assert len(server.requests) == 1 and server.last.url.params["limit"] == "12"
    assert server.last.url.params["task"] == "hello"


def test_audit_pages_through_and_an_empty_page_ends_it() -> None:
    entry = {
        "actor_kind": "local",
        "actor_name": "a",
        "source": "cli",
        "action": "x",
        "outcome": "ok",
    }
    replies = iter(
        [
            {"items": [entry, entry], "next_cursor": "c1"},
            {"items": [entry], "next_cursor": "c2"},
            {"items": [], "next_cursor": "c3"},  # a server that keeps saying "more"
        ]
    )
    server = Server(lambda request: httpx.Response(200, json=next(replies)))
    with server.client() as client:
        found = client.audit(task="hello", limit=None)
    assert len(found) == 3 and len(server.requests) == 3
    assert [r.url.params.get("cursor") for r in server.requests] == [None, "c1", "c2"]


async def test_the_async_client_pages_too() -> None:
    server = Server(paged([task_json(f"t{i}") for i in range(5)]))
    async with server.aclient() as client:
        found = await client.list(limit=3)
        every = [t.name async for t in client.iter_tasks()]
    assert [t.name for t in found] == ["t0", "t1", "t2"]
    assert every == [f"t{i}" for i in range(5)]


# Waiting


def states(*names: str) -> Handler:
    replies = iter(names)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=job_json(state=next(replies)))

    return handle


def test_wait_polls_until_the_job_is_final() -> None:
    server = Server(states("pending", "running", "running", "completed"))
    with server.client() as client:
        job = client.wait("j1", timeout=10, interval=0.01)
    assert job.state is models.JobState.COMPLETED
    assert len(server.requests) == 4
    assert {r.url.path for r in server.requests} == {"/v1/jobs/j1"}


def test_wait_gives_up_after_its_timeout_with_the_job_as_it_is() -> None:
    server = Server(lambda request: httpx.Response(200, json=job_json(state="running")))
    with server.client() as client:
        started = dt.datetime.now()
        job = client.wait("j1", timeout=0.2, interval=0.05)
        took = (dt.datetime.now() - started).total_seconds()
    assert job.state is models.JobState.RUNNING
    assert 0.2 <= took < 2 and 2 <= len(server.requests) <= 10


async def test_async_wait_polls_and_times_out() -> None:
    server = Server(states("pending", "failed"))
    async with server.aclient() as client:
        assert (await client.wait("j1", timeout=10, interval=0.01)).state is models.JobState.FAILED
    server = Server(lambda request: httpx.Response(200, json=job_json(state="pending")))
    async with server.aclient() as client:
        job = await client.wait("j1", timeout=0.1, interval=0.02)
    assert job.state is models.JobState.PENDING and len(server.requests) >= 2


async def test_the_async_client_sends_the_same_requests_and_errors() -> None:
    server = Server(answer(201, JOB_REF))
    async with server.aclient() as client:
        job = await client.schedule("hello", AT)
    assert job.id == "j9"
    assert server.last.method == "POST" and server.last.url.path == "/v1/tasks/hello/schedule"
    assert body_of(server.last) == {"at": "2030-05-06T07:08:09Z"}
    assert server.last.headers["authorization"] == f"Bearer {TOKEN}"
    gone = errors.JobAlreadyFinished("j1", "completed")
    async with Server(answer(409, wire_errors.body_of(gone))).aclient() as client:
        with pytest.raises(errors.JobAlreadyFinished, match="already finished"):
            await client.cancel("j1")


# Config: arguments, else the environment, else the file (mode 0600)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv(config.ENV_URL, raising=False)
    monkeypatch.delenv(config.ENV_TOKEN, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "taskscheduler" / "client.json"


def test_the_default_file_is_under_the_xdg_config_dir(clean_env: Path) -> None:
    assert config.default_path() == clean_env
    assert config.default_path({}) == Path.home() / ".config" / "taskscheduler" / "client.json"


def test_arguments_win_over_the_environment_which_wins_over_the_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.save(config.Config("http://file:1", "tsk_file"))
    assert config.resolve() == config.Config("http://file:1", "tsk_file")
    monkeypatch.setenv(config.ENV_URL, "http://env:2/v1/")
    monkeypatch.setenv(config.ENV_TOKEN, "tsk_env")
    assert config.resolve() == config.Config("http://env:2", "tsk_env")
    assert config.resolve("http://arg:3", "tsk_arg") == config.Config("http://arg:3", "tsk_arg")
    assert config.resolve(token="tsk_arg") == config.Config("http://env:2", "tsk_arg")


def test_the_files_token_goes_only_to_the_files_url(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.save(config.Config("http://file:1", "tsk_file"))
    assert config.resolve("http://file:1/") == config.Config("http://file:1", "tsk_file")
    assert config.resolve("http://elsewhere:1") == config.Config("http://elsewhere:1", None)
    monkeypatch.setenv(config.ENV_URL, "http://env:2")
    assert config.resolve().token is None


def test_no_url_anywhere_says_how_to_give_one(clean_env: Path) -> None:
    with pytest.raises(errors.TaskSchedulerError, match="tasks login"):
        config.resolve()


def test_the_client_uses_what_resolve_finds(clean_env: Path) -> None:
    config.save(config.Config("http://file:1", "tsk_file"))
    server = Server(answer(200, task_json()))
    with Client(http_transport=httpx.MockTransport(server)) as client:
        client.get("hello")
    assert str(server.last.url) == "http://file:1/v1/tasks/hello"
    assert server.last.headers["authorization"] == "Bearer tsk_file"


def test_the_file_is_written_0600_whatever_the_umask(clean_env: Path) -> None:
    old = os.umask(0)
    try:
        clean_env.parent.mkdir(parents=True)
        clean_env.write_text("{}")
        os.chmod(clean_env, 0o644)
        path = config.save(config.Config("http://x:1", "tsk_x"))
    finally:
        os.umask(old)
    assert path == clean_env
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": "http://x:1", "token": "tsk_x"}
    assert not path.with_name(path.name + ".tmp").exists()
    assert config.remove() is True and not path.exists() and config.remove() is False


def test_a_fresh_config_dir_is_private(clean_env: Path) -> None:
    config.save(config.Config("http://x:1", "tsk_x"))
    assert stat.S_IMODE(clean_env.parent.stat().st_mode) & 0o077 == 0


# tasks login / logout


def login_against(monkeypatch: pytest.MonkeyPatch, server: Server, *args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from taskscheduler.cli import login
    from taskscheduler.cli.main import app

    def client(url: str, token: str | None) -> Client:
        return Client(url, token, http_transport=httpx.MockTransport(server))

    monkeypatch.setattr(login, "_client", client)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_login_checks_the_token_with_a_read_call_then_saves_it_0600(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server(answer(200, {"items": [], "next_cursor": None}))
    code, output = login_against(
        monkeypatch, server, "login", "--url", "http://api:8000/", "--token", "tsk_ok"
    )
    assert code == 0, output
    assert [(r.method, r.url.path) for r in server.requests] == [("GET", "/v1/tasks")]
    assert server.last.headers["authorization"] == "Bearer tsk_ok"
    assert stat.S_IMODE(clean_env.stat().st_mode) == 0o600
    assert json.loads(clean_env.read_text()) == {"url": "http://api:8000", "token": "tsk_ok"}
    assert "tsk_ok" not in output
    code, output = login_against(monkeypatch, server, "logout")
    assert code == 0 and not clean_env.exists() and "removed" in output


def test_login_with_a_refused_token_saves_nothing(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server(answer(401, {"detail": "not authenticated: unknown or revoked token"}))
    code, output = login_against(
        monkeypatch, server, "login", "--url", "http://api:8000", "--token", "tsk_bad"
    )
    assert code != 0
    assert "refused the token" in output
    assert not clean_env.exists()


def test_a_broken_file_does_not_stop_a_caller_who_gave_both(clean_env: Path) -> None:
    clean_env.parent.mkdir(parents=True)
    clean_env.write_text("{not json")
    assert config.resolve("http://a:1", "tsk_a") == config.Config("http://a:1", "tsk_a")
    with pytest.raises(errors.TaskSchedulerError, match="cannot read"):
        config.resolve("http://a:1")
