"""The job gateway against a stand-in Prefect API: what it forwards, how, and what it refuses."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from taskscheduler import audit
from taskscheduler.gate import credential
from taskscheduler.gate.app import create_app
from taskscheduler.gate.proxy import Gate
from taskscheduler.gate.refusals import Refusals

KEY = b"gate-key-for-tests-0123456789abcdef"
PLATFORM_AUTH = "taskscheduler:the-platforms-password"
RUN = str(uuid.uuid4())
OTHER = str(uuid.uuid4())
TASK_RUN = str(uuid.uuid4())
FOREIGN_TASK_RUN = str(uuid.uuid4())


class Sink:
    def __init__(self) -> None:
        self.entries: list[audit.AuditEntry] = []

    async def record(self, *entries: audit.AuditEntry) -> None:
        self.entries.extend(entries)


class Upstream:
    """A stand-in Prefect API that records what reached it."""

    def __init__(self, *, state: str = "RUNNING", ended: dt.datetime | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.state = state
        self.ended = ended

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == f"/api/flow_runs/{RUN}" and request.method == "GET":
            when = (self.ended or dt.datetime.now(dt.UTC)).isoformat()
            return httpx.Response(
                200,
                json={
                    "id": RUN,
                    "flow_id": str(uuid.uuid4()),
                    "deployment_id": str(uuid.uuid4()),
                    "parameters": {"task": "greet", "code": "greet-v1", "secrets": {}},
                    "state_type": self.state,
                    "state": {"timestamp": when, "state_details": {}},
                    "work_pool_name": "process",
                },
            )
        if path == f"/api/task_runs/{TASK_RUN}":
            return httpx.Response(200, json={"id": TASK_RUN, "flow_run_id": RUN})
        if path == f"/api/task_runs/{FOREIGN_TASK_RUN}":
            return httpx.Response(200, json={"id": FOREIGN_TASK_RUN, "flow_run_id": OTHER})
        if path == "/api/csrf-token":
            return httpx.Response(422, json={"detail": "CSRF protection is disabled."})
        return httpx.Response(201, json={"ok": True})


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def job_headers(run: str = RUN) -> dict[str, str]:
    return basic(credential.auth_string(credential.mint(KEY, run)))


@pytest.fixture
def make() -> Callable[..., Any]:
    def build(upstream: Upstream) -> tuple[Gate, Sink]:
        sink = Sink()
        gate = Gate(
            "http://prefect.test/api", auth_string=PLATFORM_AUTH, key=KEY, refusals=Refusals(sink)
        )
        gate.upstream.http = httpx.AsyncClient(
            base_url="http://prefect.test/api/",
            transport=httpx.MockTransport(upstream),
            headers=basic(PLATFORM_AUTH),
        )
        return gate, sink

    return build


@pytest.fixture
async def client_of() -> AsyncIterator[Callable[[Gate], httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def open_(gate: Gate) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(gate)), base_url="http://door"
        )
        opened.append(client)
        return client

    yield open_
    for client in opened:
        await client.aclose()


async def test_an_allowed_call_goes_upstream_with_the_platforms_credentials_not_the_jobs(
    make: Callable[..., Any], client_of: Callable[[Gate], httpx.AsyncClient]
) -> None:
    upstream = Upstream()
    gate, sink = make(upstream)
    answer = await client_of(gate).post(
        f"/api/flow_runs/{RUN}/set_state",
        json={"state": {"type": "COMPLETED"}},
        headers={**job_headers(), "Prefect-Csrf-Token": "from-the-job"},
    )
    assert answer.status_code == 201
    forwarded = upstream.seen[-1]
    assert forwarded.url.path == f"/api/flow_runs/{RUN}/set_state"
    assert forwarded.headers["authorization"] == basic(PLATFORM_AUTH)["Authorization"]
    assert forwarded.headers.get("prefect-csrf-token") != "from-the-job"
    assert json.loads(forwarded.content) == {"state": {"type": "COMPLETED"}}
    assert sink.entries == []


async def test_a_call_about_another_run_is_refused_audited_and_never_forwarded(
    make: Callable[..., Any], client_of: Callable[[Gate], httpx.AsyncClient]
) -> None:
    upstream = Upstream()
    gate, sink = make(upstream)
    answer = await client_of(gate).post(
        f"/api/flow_runs/{OTHER}/set_state",
        json={"state": {"type": "CANCELLED"}},
        headers=job_headers(),
    )
    assert answer.status_code == 403
    assert "another flow run" in answer.json()["detail"]
    assert all(OTHER not in str(r.url) for r in upstream.seen)
    [entry] = sink.entries
    assert (entry.actor_kind, entry.source, entry.job, entry.outcome) == (
        "job",
        "gateway",
        RUN,
        "forbidden",
    )
    assert f"/flow_runs/{OTHER}/set_state" in (entry.detail or "")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(PLATFORM_AUTH),  # the platform's own string is not a job credential
        basic("job:tsj1.forged.0.sig"),
        {"Authorization": "Bearer tsk_some-api-token"},
    ],
)
async def test_without_a_valid_job_credential_nothing_passes(
    make: Callable[..., Any],
    client_of: Callable[[Gate], httpx.AsyncClient],
    headers: dict[str, str],
) -> None:
    upstream = Upstream()
    gate, sink = make(upstream)
    answer = await client_of(gate).get(f"/api/flow_runs/{RUN}", headers=headers)
    assert answer.status_code == 401
    assert upstream.seen == []
    assert [e.actor_kind for e in sink.entries] == ["anonymous"]


async def test_a_credential_dies_a_while_after_its_run_ended(
    make: Callable[..., Any], client_of: Callable[[Gate], httpx.AsyncClient]
) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    gate, _ = make(Upstream(state="COMPLETED", ended=long_ago))
    answer = await client_of(gate).get(f"/api/flow_runs/{RUN}", headers=job_headers())
    assert answer.status_code == 401
    assert "ended" in answer.json()["detail"]
    recently, _ = make(Upstream(state="COMPLETED"))
    assert (
        await client_of(recently).post(
            "/api/logs/",
            json=[{"flow_run_id": RUN, "message": "last words"}],
            headers=job_headers(),
        )
    ).status_code == 201


async def test_task_runs_are_the_jobs_own_only(
    make: Callable[..., Any], client_of: Callable[[Gate], httpx.AsyncClient]
) -> None:
    gate, _ = make(Upstream())
    client = client_of(gate)
    own = await client.post(f"/api/task_runs/{TASK_RUN}/set_state", json={}, headers=job_headers())
    foreign = await client.post(
        f"/api/task_runs/{FOREIGN_TASK_RUN}/set_state", json={}, headers=job_headers()
    )
    assert (own.status_code, foreign.status_code) == (201, 403)


async def test_csrf_is_the_gateways_business(
    make: Callable[..., Any], client_of: Callable[[Gate], httpx.AsyncClient]
) -> None:
    upstream = Upstream()
    gate, _ = make(upstream)
    answer = await client_of(gate).get("/api/csrf-token?client=x", headers=job_headers())
    assert answer.status_code == 422 and "disabled" in answer.text
    assert all(r.url.path != "/api/csrf-token" for r in upstream.seen)


async def test_a_flood_of_refusals_is_two_audit_rows(
    make: Callable[..., Any], client_of: Callable[[Gate], httpx.AsyncClient]
) -> None:
    gate, sink = make(Upstream())
    client = client_of(gate)
    for _ in range(50):
        assert (
            await client.post("/api/deployments/filter", json={}, headers=job_headers())
        ).status_code == 403
    assert len(sink.entries) == 1
    await gate.refusals.flush(everything=True)
    assert len(sink.entries) == 2
    assert (sink.entries[1].detail or "").startswith("49 more refused")
