"""Contract: the set-based fast path writes the rows Prefect's own orchestration writes.

Two runs of one deployment go Scheduled → Pending → Running → Completed, one through Prefect's
``set_state`` (as the fast lane's bulk REST path does), one through ``/api/taskscheduler/fast``.
Their ``flow_run`` rows, their ``flow_run_state`` rows and their terminal events are compared
column by column: equal where Prefect's values do not depend on the moment, and in the same
relation to the states' timestamps where they do. A Prefect upgrade that changes what its
orchestration writes fails here, loudly, before the fast lane drifts from it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from prefect.server.database import provide_database_interface
from prefect.server.services import scheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler._prefect.rest import run_heartbeat_events
from taskscheduler._prefect.server import recent_deployments
from taskscheduler.platform import drop_database, free_port
from taskscheduler.policy import TASK_DELETED

pytestmark = pytest.mark.slow

# Columns whose values are the run's own (ids, names) or the moment's (timestamps): compared by
# relation below, not by value.
RUN_OWN = {"id", "name", "created", "updated", "state_id", "idempotency_key"}
RUN_TIMES = {
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
    "state_timestamp",
}
STATE_OWN = {"id", "created", "updated", "flow_run_id", "timestamp"}
DETAIL_OWN = {"flow_run_id", "transition_id", "scheduled_time"}


def _asyncpg(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


class Server:
    """A Prefect server on a throwaway database, served through our app."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.database = f"tasks_contract_{uuid.uuid4().hex[:8]}"
        base = os.environ.get("TASKS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/x")
        self.url = base.rsplit("/", 1)[0] + f"/{self.database}"
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.root = root

    def start(self) -> None:
        async def create() -> None:
            admin = create_async_engine(
                _asyncpg(self.url.rsplit("/", 1)[0] + "/postgres"), isolation_level="AUTOCOMMIT"
            )
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{self.database}"'))
            await admin.dispose()

        asyncio.run(create())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TASKS_"))},
            "PREFECT_HOME": str(self.root / "home"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": _asyncpg(self.url),
        }
        self.log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskscheduler._prefect.server", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.api}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((self.root / "server.log").read_text()[-3000:])
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        drop_database(self.url)

    def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            engine = create_async_engine(_asyncpg(self.url))
            try:
                async with engine.connect() as conn:
                    return [dict(r) for r in (await conn.execute(text(query), params)).mappings()]
            finally:
                await engine.dispose()

        return asyncio.run(read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("contract"))
    started.start()
    try:
        yield started
    finally:
        started.stop()


def post(server: Server, path: str, body: Any) -> Any:
    response = httpx.post(f"{server.api}/{path}", json=body, timeout=30)
    assert response.is_success, (path, response.status_code, response.text)
    return response.json() if response.content else None


def deployment(server: Server, pool: str, **extra: Any) -> str:
    created = httpx.post(f"{server.api}/work_pools/", json={"name": pool, "type": "process"})
    assert created.status_code in (201, 409), created.text  # 409: made by an earlier call
    flow_id = post(server, "flows/", {"name": f"contract-{pool}"})["id"]
    return str(
        post(
            server,
            "deployments/",
            {
                "name": f"d-{uuid.uuid4().hex[:6]}",
                "flow_id": flow_id,
                "work_pool_name": pool,
                **extra,
            },
        )["id"]
    )


def scheduled_run(server: Server, deployment_id: str, at: dt.datetime) -> str:
    run = post(
        server,
        f"deployments/{deployment_id}/create_flow_run",
        {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": at.isoformat()}}},
    )
    return str(run["id"])


def prefects_path(server: Server, run_id: str) -> None:
    """Pending, Running, Completed through Prefect's orchestration, as the bulk path sends."""
    for state in ("PENDING", "RUNNING", "COMPLETED"):
        answer = post(
            server,
            f"flow_runs/{run_id}/set_state",
            {"state": {"type": state, "state_details": {"transition_id": str(uuid.uuid4())}}},
        )
        assert answer["status"] == "ACCEPT", answer


def our_path(server: Server, pool: str, run_id: str) -> None:
    claim = post(
        server,
        "taskscheduler/fast/claim",
        {"pool": pool, "before": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()},
    )
    [claimed] = [c for c in claim["claimed"] if c["id"] == run_id]
    started = post(
        server,
        "taskscheduler/fast/start",
        {"runs": [{"id": run_id, "state_id": claimed["pending_state_id"]}]},
    )["started"]
    finished = post(
        server,
        "taskscheduler/fast/finish",
        {
            "runs": [{"id": run_id, "state_id": started[run_id]}],
            "logs": [
                {
                    "name": "contract",
                    "level": 20,
                    "message": "written with the final state",
                    "timestamp": dt.datetime.now(dt.UTC).isoformat(),
                    "flow_run_id": run_id,
                }
            ],
        },
    )
    assert finished["completed"] == [run_id], finished


def same_runs(server: Server, theirs: str, ours: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two runs' rows, once every column that is not the run's own or the moment's is
    found equal."""
    a, b = run_row(server, theirs), run_row(server, ours)
    differing = {
        column: (a[column], b[column])
        for column in a
        if column not in RUN_OWN | RUN_TIMES and a[column] != b[column]
    }
    assert differing == {}, differing
    return a, b


def run_row(server: Server, run_id: str) -> dict[str, Any]:
    [row] = server.rows("SELECT * FROM flow_run WHERE id = :id", id=run_id)
    return row


def state_rows(server: Server, run_id: str) -> list[dict[str, Any]]:
    return server.rows(
        "SELECT * FROM flow_run_state WHERE flow_run_id = :id ORDER BY timestamp", id=run_id
    )


def test_the_fast_path_writes_the_rows_prefects_orchestration_writes(server: Server) -> None:
    pool = "contract-fast"
    deployment_id = deployment(server, pool)
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    theirs, ours = (
        scheduled_run(server, deployment_id, due),
        scheduled_run(server, deployment_id, due),
    )
    prefects_path(server, theirs)
    our_path(server, pool, ours)

    a, b = same_runs(server, theirs, ours)
    for row, states in ((a, state_rows(server, theirs)), (b, state_rows(server, ours))):
        assert [s["type"] for s in states] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
        running, completed = states[2], states[3]
        assert row["state_id"] == completed["id"]
        assert row["state_timestamp"] == completed["timestamp"]
        assert row["start_time"] == running["timestamp"]
        assert row["end_time"] == completed["timestamp"]
        assert row["total_run_time"] == completed["timestamp"] - running["timestamp"]
        assert row["next_scheduled_start_time"] is None, (row["id"] == a["id"], row)
        assert row["expected_start_time"] == states[0]["timestamp"] or row["expected_start_time"]
        assert (
            states[1]["state_details"]["scheduled_time"]
            == states[0]["state_details"]["scheduled_time"]
        )
    for theirs_state, our_state in zip(
        state_rows(server, theirs), state_rows(server, ours), strict=True
    ):
        same = {k: v for k, v in theirs_state.items() if k not in STATE_OWN | {"state_details"}}
        assert same == {k: our_state[k] for k in same}, (theirs_state, our_state)
        details = {k: v for k, v in theirs_state["state_details"].items() if k not in DETAIL_OWN}
        assert details == {k: our_state["state_details"][k] for k in details}
        assert theirs_state["state_details"].keys() == our_state["state_details"].keys()
    [log] = server.rows("SELECT * FROM log WHERE flow_run_id = :id", id=ours)
    assert log["message"] == "written with the final state"


def test_the_fast_path_publishes_the_running_and_terminal_events_prefect_publishes(
    server: Server,
) -> None:
    """The Running and Completed events of both paths carry the same resource, related
    resources and payload; ours name no predecessor for Running (nobody publishes the claim's
    Pending) and the Running event for Completed, so Prefect's triggers never hold our end
    events waiting for one that will not come (a failed job's notification waited 15 min)."""
    pool = "contract-events"
    deployment_id = deployment(server, pool, tags=["contract-tag"])
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    theirs = scheduled_run(server, deployment_id, due)
    # Created in bulk, as the fast lane's jobs are: no Scheduled event, so Prefect has cached
    # nothing of the run, and the related resources of our events are those ``related`` reads.
    [ours] = post(
        server,
        "taskscheduler/jobs/bulk",
        {"deployment_id": deployment_id, "runs": [{"scheduled_time": due.isoformat(), "key": "k"}]},
    )["ids"]
    prefects_path(server, theirs)
    our_path(server, pool, ours)

    def event(run_id: str, name: str) -> dict[str, Any] | None:
        found = post(
            server,
            "events/filter",
            {
                "filter": {
                    "event": {"name": [f"prefect.flow-run.{name}"]},
                    "resource": {"id": [f"prefect.flow-run.{run_id}"]},
                    "occurred": {
                        "since": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
                    },
                }
            },
        )["events"]
        return found[0] if found else None

    def related(event: dict[str, Any]) -> list[list[tuple[str, str]]]:
        """Every related resource with every label (ids, names, roles, the pool's type, tags):
        ours are read for the whole set at once (``related.py``), Prefect's one by one."""
        return sorted(sorted(r.items()) for r in event["related"])

    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name, before in (("Running", "PENDING"), ("Completed", "RUNNING")):
        deadline = time.monotonic() + 60
        while (
            event(theirs, name) is None or event(ours, name) is None
        ) and time.monotonic() < deadline:
            time.sleep(1)
        a, b = event(theirs, name), event(ours, name)
        assert a is not None and b is not None, (name, a, b)
        assert a["resource"].keys() == b["resource"].keys()
        keys = ("prefect.state-name", "prefect.state-type", "prefect.run-count")
        assert {k: a["resource"][k] for k in keys} == {k: b["resource"][k] for k in keys}
        assert related(a) == related(b)
        assert {r["prefect.resource.role"] for r in b["related"]} >= {
            "flow",
            "deployment",
            "work-queue",
            "work-pool",
            "tag",
        }
        assert (
            a["payload"]["intended"]
            == b["payload"]["intended"]
            == {
                "from": before,
                "to": name.upper(),
            }
        )
        assert a["payload"].keys() == b["payload"].keys()
        found[name] = (a, b)
    (_, our_running), (_, our_completed) = found["Running"], found["Completed"]
    assert our_running.get("follows") is None
    assert our_completed["follows"] == our_running["id"]


def test_silent_jobs_are_the_running_ones_with_no_heartbeat_since(server: Server) -> None:
    """The watchdog's crash rule, on Prefect's own rows: a running job is silent since a time
    when its Running state began before it and none of its heartbeats (sent as the fast worker
    sends them, stored by Prefect's event persister) occurred after it."""
    deployment_id = deployment(server, "contract-silence")
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    quiet, beating, ended, later = (scheduled_run(server, deployment_id, due) for _ in range(4))

    def move(run_id: str, *states: str) -> None:
        for state in states:
            answer = post(server, f"flow_runs/{run_id}/set_state", {"state": {"type": state}})
            assert answer["status"] == "ACCEPT", answer

    for run_id in (quiet, beating, ended):
        move(run_id, "PENDING", "RUNNING")
    move(ended, "COMPLETED")
    time.sleep(0.1)
    since = dt.datetime.now(dt.UTC)
    time.sleep(0.1)
    move(later, "PENDING", "RUNNING")
    post(server, "events", run_heartbeat_events([beating], time.time()))

    def silent() -> set[str]:
        response = httpx.get(
            f"{server.api}/taskscheduler/jobs/silent", params={"since": since.isoformat()}
        )
        assert response.is_success, response.text
        return set(response.json()["runs"])

    deadline = time.monotonic() + 60  # the persister writes the heartbeat within seconds
    while beating in silent() and time.monotonic() < deadline:
        time.sleep(1)
    found = silent()
    assert quiet in found
    assert beating not in found, "a heartbeat after `since` is a sign of life"
    assert later not in found, "a Running state after `since` is a sign of life"
    assert ended not in found, "only running jobs can be silent"
    naive = httpx.get(
        f"{server.api}/taskscheduler/jobs/silent", params={"since": "2026-01-01T00:00:00"}
    )
    assert naive.status_code == 422, naive.text


def test_a_run_cancelled_while_held_never_starts(server: Server) -> None:
    pool = "contract-cancel"
    deployment_id = deployment(server, pool)
    run_id = scheduled_run(server, deployment_id, dt.datetime.now(dt.UTC))
    claim = post(
        server,
        "taskscheduler/fast/claim",
        {"pool": pool, "before": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()},
    )
    [claimed] = claim["claimed"]
    answer = post(
        server, f"flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLED"}, "force": True}
    )
    assert answer["status"] == "ACCEPT"
    started = post(
        server,
        "taskscheduler/fast/start",
        {"runs": [{"id": run_id, "state_id": claimed["pending_state_id"]}]},
    )["started"]
    assert started == {}
    row = run_row(server, run_id)
    assert (row["state_type"], row["run_count"]) == ("CANCELLED", 0)
    assert "RUNNING" not in [s["type"] for s in state_rows(server, run_id)]


def test_runs_that_cannot_be_claimed_never_crowd_out_the_others(server: Server) -> None:
    """A deleted task's runs are cancelled, a limited task's are left to Prefect's path, and the
    claim still returns the runs it can start, earliest first."""
    pool = "contract-crowd"
    plain = deployment(server, pool)
    limited = deployment(server, pool, concurrency_limit=1)
    doomed = deployment(server, pool)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    orphans = [scheduled_run(server, doomed, past) for _ in range(5)]
    held = [scheduled_run(server, limited, past) for _ in range(5)]
    httpx.delete(f"{server.api}/deployments/{doomed}", timeout=30).raise_for_status()
    remaining = [r for r in orphans if server.rows("SELECT 1 FROM flow_run WHERE id = :id", id=r)]
    runnable = [scheduled_run(server, plain, dt.datetime.now(dt.UTC)) for _ in range(3)]
    claim = post(
        server,
        "taskscheduler/fast/claim",
        {
            "pool": pool,
            "before": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat(),
            "limit": 3,
        },
    )
    assert sorted(c["id"] for c in claim["claimed"]) == sorted(runnable)
    assert sorted(claim["limited"]) == sorted(held)[:3] or set(claim["limited"]) <= set(held)
    assert claim["cancelled_orphans"] == len(remaining)
    for run_id in remaining:
        assert run_row(server, run_id)["state_type"] == "CANCELLED"


def test_a_call_repeated_after_its_answer_was_lost_answers_what_the_first_did(
    server: Server,
) -> None:
    """Claim, start and finish each sent twice with one transition id, as a worker does when an
    answer is lost: the repeat names the same runs and states, moves nothing again, and the log
    lines, which carry their sender's ids, are stored once."""
    pool = "contract-repeat"
    deployment_id = deployment(server, pool)
    runs = sorted(scheduled_run(server, deployment_id, dt.datetime.now(dt.UTC)) for _ in range(2))
    claim = {
        "pool": pool,
        "before": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat(),
        "transition_id": str(uuid.uuid4()),
    }
    first = post(server, "taskscheduler/fast/claim", claim)
    repeat = post(server, "taskscheduler/fast/claim", {**claim, "repeat": True})
    assert sorted(c["id"] for c in first["claimed"]) == runs
    assert repeat["claimed"] == first["claimed"]
    start = {
        "runs": [{"id": c["id"], "state_id": c["pending_state_id"]} for c in first["claimed"]],
        "transition_id": str(uuid.uuid4()),
    }
    started = post(server, "taskscheduler/fast/start", start)["started"]
    assert post(server, "taskscheduler/fast/start", start)["started"] == started
    line = {
        "id": str(uuid.uuid4()),
        "name": "contract",
        "level": 20,
        "message": "sent twice",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "flow_run_id": runs[0],
    }
    finish = {
        "runs": [{"id": r, "state_id": started[r]} for r in runs],
        "logs": [line],
        "transition_id": str(uuid.uuid4()),
    }
    completed = post(server, "taskscheduler/fast/finish", finish)["completed"]
    assert sorted(post(server, "taskscheduler/fast/finish", finish)["completed"]) == runs
    assert sorted(completed) == runs
    for run_id in runs:
        assert [s["type"] for s in state_rows(server, run_id)] == [
            "SCHEDULED",
            "PENDING",
            "RUNNING",
            "COMPLETED",
        ]
        assert run_row(server, run_id)["run_count"] == 1
    assert len(server.rows("SELECT id FROM log WHERE id = :id", id=line["id"])) == 1


def test_jobs_created_in_bulk_have_the_rows_prefects_create_flow_run_writes(
    server: Server,
) -> None:
    """One run through Prefect's ``create_flow_run``, two through ``/taskscheduler/jobs/bulk``
    (one with parameters over the deployment's): equal rows but for what is the run's own, the
    message of the first state, and the idempotency key; a repeat of the call creates nothing
    and answers the same ids; the fast path then claims, starts and finishes one."""
    pool = "contract-bulk"
    deployment_id = deployment(server, pool, parameters={"task": "t", "parameters": {"a": 1}})
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    theirs = scheduled_run(server, deployment_id, due)
    body = {
        "deployment_id": deployment_id,
        "runs": [
            {"scheduled_time": due.isoformat(), "key": "first"},
            {
                "scheduled_time": due.isoformat(),
                "key": "second",
                "parameters": {"parameters": {"a": 2}},
            },
        ],
    }
    answer = post(server, "taskscheduler/jobs/bulk", body)
    assert answer["created"] == 2 and len(set(answer["ids"])) == 2
    assert post(server, "taskscheduler/jobs/bulk", body) == {**answer, "created": 0}
    ours, other = answer["ids"]

    a, b = same_runs(server, theirs, ours)
    assert {c for c in RUN_TIMES if a[c] is None} == {c for c in RUN_TIMES if b[c] is None}
    assert b["expected_start_time"] == b["next_scheduled_start_time"] == due
    assert b["idempotency_key"] == f"taskscheduler-bulk {deployment_id} first"
    assert run_row(server, other)["parameters"] == {"task": "t", "parameters": {"a": 2}}
    [their_state], [our_state] = state_rows(server, theirs), state_rows(server, ours)
    assert b["state_id"] == our_state["id"]
    assert b["state_timestamp"] == our_state["timestamp"]
    same = {k: v for k, v in their_state.items() if k not in STATE_OWN | {"state_details"}}
    assert {**same, "message": "Scheduled in bulk"} == {k: our_state[k] for k in same}
    assert dt.datetime.fromisoformat(our_state["state_details"]["scheduled_time"]) == due
    details = {k: v for k, v in their_state["state_details"].items() if k not in DETAIL_OWN}
    assert details == {k: our_state["state_details"][k] for k in details}
    our_path(server, pool, ours)  # the fast path claims, starts and finishes it
    assert [s["type"] for s in state_rows(server, ours)] == [
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]


def test_deleting_a_deployment_cancels_its_held_runs_as_a_forced_cancel_would(
    server: Server,
) -> None:
    """Two held runs of a deployment: one cancelled through Prefect's forced ``set_state``,
    the other by ``DELETE /taskscheduler/deployments/{id}``; equal rows but for what is the
    run's own and the message; the held one then never starts, the deployment and its
    Scheduled run are gone, finished runs stay, and a second delete answers 404."""
    pool = "contract-delete"
    deployment_id = deployment(server, pool)
    due = dt.datetime.now(dt.UTC)
    theirs, ours = (scheduled_run(server, deployment_id, due) for _ in range(2))
    finished = scheduled_run(server, deployment_id, due)
    later = scheduled_run(server, deployment_id, due + dt.timedelta(hours=1))
    before = (due + dt.timedelta(minutes=1)).isoformat()
    claimed = post(server, "taskscheduler/fast/claim", {"pool": pool, "before": before})
    pending = {c["id"]: c["pending_state_id"] for c in claimed["claimed"]}
    assert set(pending) == {theirs, ours, finished}
    started = post(
        server,
        "taskscheduler/fast/start",
        {"runs": [{"id": finished, "state_id": pending[finished]}]},
    )["started"]
    post(
        server,
        "taskscheduler/fast/finish",
        {"runs": [{"id": finished, "state_id": started[finished]}]},
    )
    answer = post(
        server, f"flow_runs/{theirs}/set_state", {"state": {"type": "CANCELLED"}, "force": True}
    )
    assert answer["status"] == "ACCEPT", answer

    deleted = httpx.delete(f"{server.api}/taskscheduler/deployments/{deployment_id}", timeout=30)
    assert deleted.status_code == 204, deleted.text

    a, b = same_runs(server, theirs, ours)
    assert {c for c in RUN_TIMES if a[c] is None} == {c for c in RUN_TIMES if b[c] is None}
    their_state, our_state = state_rows(server, theirs)[-1], state_rows(server, ours)[-1]
    same = {k: v for k, v in their_state.items() if k not in STATE_OWN | {"state_details"}}
    assert {**same, "message": TASK_DELETED} == {k: our_state[k] for k in same}
    details = {k: v for k, v in their_state["state_details"].items() if k not in DETAIL_OWN}
    assert details == {k: our_state["state_details"][k] for k in details}
    assert post(
        server, "taskscheduler/fast/start", {"runs": [{"id": ours, "state_id": pending[ours]}]}
    ) == {"started": {}, "transition_id": ANY}
    assert run_row(server, finished)["state_type"] == "COMPLETED"
    assert server.rows("SELECT id FROM flow_run WHERE id = :id", id=later) == []
    assert httpx.get(f"{server.api}/deployments/{deployment_id}").status_code == 404
    again = httpx.delete(f"{server.api}/taskscheduler/deployments/{deployment_id}", timeout=30)
    assert again.status_code == 404


def _own_ids(value: Any, own: dict[Any, str]) -> Any:
    """``value`` with each id of ``own`` replaced by its kind."""
    if isinstance(value, dict):
        return {k: _own_ids(v, own) for k, v in value.items()}
    return own.get(str(value), value)


def _differing(a: dict[str, Any], b: dict[str, Any], own: set[str]) -> dict[str, Any]:
    return {c: (a[c], b[c]) for c in a if c not in own and a[c] != b[c]}


def test_deployments_created_in_bulk_have_the_rows_prefects_routes_write(server: Server) -> None:
    """One deployment with a code document through Prefect's routes (``POST /block_documents/``,
    ``POST /deployments/``, ``POST /deployments/{id}/schedule``), one through
    ``/taskscheduler/deployments/bulk``: equal deployment, schedule, document, run and state rows
    but for what is each one's own. A call naming a taken name creates nothing at all."""
    pool = "contract-create"
    httpx.post(f"{server.api}/work_pools/", json={"name": pool, "type": "process"})
    flow_id = post(server, "flows/", {"name": "contract-create"})["id"]
    block_type = post(server, "block_types/", {"name": "Contract code", "slug": "contract-code"})
    schema = post(
        server,
        "block_schemas/",
        {
            "fields": {"title": "ContractCode", "type": "object", "properties": {}},
            "block_type_id": block_type["id"],
            "capabilities": [],
        },
    )

    def document(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "data": {"source": "def main(): pass"},
            "block_schema_id": schema["id"],
            "block_type_id": block_type["id"],
        }

    def payload(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "flow_id": flow_id,
            "work_pool_name": pool,
            "version": "v1",
            "parameters": {"task": name, "parameters": {"a": 1}},
            "tags": ["taskscheduler", "contract"],
            "concurrency_limit": 2,
            "paused": False,
            "schedules": [
                {
                    "schedule": {
                        "interval": 3600.0,
                        "timezone": "UTC",
                        "anchor_date": "2026-01-01T00:30:00+00:00",
                    },
                    "active": True,
                }
            ],
        }

    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    post(server, "block_documents/", document("theirs-v1"))
    theirs = post(server, "deployments/", payload("theirs"))["id"]
    post(server, f"deployments/{theirs}/schedule", {"start_time": since.isoformat()})
    body = {
        "documents": [document("ours-v1")],
        "deployments": [{"deployment": payload("ours"), "schedule_from": since.isoformat()}],
    }
    answer = post(server, "taskscheduler/deployments/bulk", body)
    [ours] = answer["ids"]

    def row(table: str, column: str, value: str) -> list[dict[str, Any]]:
        return server.rows(f"SELECT * FROM {table} WHERE {column} = :v", v=value)

    [a], [b] = row("deployment", "id", theirs), row("deployment", "id", ours)
    own = {"id", "name", "created", "updated", "parameters", "created_by", "updated_by"}
    assert _differing(a, b, own | {"concurrency_limit_id"}) == {}
    [la], [lb] = (row("concurrency_limit_v2", "id", d["concurrency_limit_id"]) for d in (a, b))
    assert _differing(la, lb, {"id", "name", "created", "updated"}) == {}
    assert la["limit"] == 2
    assert b["parameters"] == {"task": "ours", "parameters": {"a": 1}}
    [sa], [sb] = (
        row("deployment_schedule", "deployment_id", theirs),
        row("deployment_schedule", "deployment_id", ours),
    )
    assert _differing(sa, sb, {"id", "created", "updated", "deployment_id"}) == {}
    [da], [db] = (
        row("block_document", "name", "theirs-v1"),
        row("block_document", "name", "ours-v1"),
    )
    assert _differing(da, db, {"id", "name", "created", "updated", "data"}) == {}  # encrypted
    data_a, data_b = (
        httpx.get(f"{server.api}/block_documents/{d['id']}", timeout=30).json()["data"]
        for d in (da, db)
    )
    assert data_a == data_b == {"source": "def main(): pass"}

    ordered = "SELECT * FROM flow_run WHERE deployment_id = :v ORDER BY expected_start_time"
    runs_a = server.rows(ordered, v=theirs)
    runs_b = server.rows(ordered, v=ours)
    assert runs_a and len(runs_a) == len(runs_b)
    assert dt.datetime.fromisoformat(answer["first_runs"][ours]) == runs_b[0]["expected_start_time"]
    for ra, rb in zip(runs_a, runs_b, strict=True):
        assert ra["expected_start_time"] == rb["expected_start_time"]
        differing = _differing(ra, rb, RUN_OWN | {"deployment_id", "parameters"})
        assert sorted(differing) == ["created_by", "labels"], differing  # name their own ...
        for column in differing:  # ... deployment and schedule
            mine = {str(sa["id"]): "schedule", str(sb["id"]): "schedule", theirs: "deployment",
                    ours: "deployment"}  # fmt: skip
            assert _own_ids(ra[column], mine) == _own_ids(rb[column], mine), column
        [state_a], [state_b] = state_rows(server, ra["id"]), state_rows(server, rb["id"])
        assert _differing(state_a, state_b, STATE_OWN | {"state_details"}) == {}

    # All or none: a taken name refuses the call before anything is written.
    refused = httpx.post(
        f"{server.api}/taskscheduler/deployments/bulk",
        json={
            "documents": [document("fresh-v1")],
            "deployments": [{"deployment": payload("fresh")}, {"deployment": payload("ours")}],
        },
        timeout=30,
    )
    assert refused.status_code == 409 and refused.json()["detail"] == {"taken": ["ours"]}
    assert (
        row("deployment", "name", "fresh") == [] and row("block_document", "name", "fresh-v1") == []
    )

    # The created events, as automations and the Prefect UI see them: equal but for what is
    # each one's own (ids and names).
    own = {str(theirs): "<deployment>", str(ours): "<deployment>", str(da["id"]): "<document>",
           str(db["id"]): "<document>", str(la["id"]): "<limit>", str(lb["id"]): "<limit>",
           '"theirs': '"<name>', '"ours': '"<name>'}  # fmt: skip

    def created(kind: str, resource_id: Any) -> dict[str, Any] | None:
        found = post(
            server,
            "events/filter",
            {
                "filter": {
                    "event": {"name": [f"prefect.{kind}.created"]},
                    "resource": {"id": [f"prefect.{kind}.{resource_id}"]},
                    "occurred": {"since": since.isoformat()},
                },
                "limit": 5,
            },
        )["events"]
        if not found:
            return None
        [event] = found
        seen = json.dumps({k: event[k] for k in ("event", "resource", "related", "payload")})
        for value, kind_of in own.items():
            seen = seen.replace(value, kind_of)
        return dict(json.loads(seen))

    for kind, a_id, b_id in (("deployment", theirs, ours), ("block-document", da["id"], db["id"])):
        deadline = time.monotonic() + 60
        while None in (pair := (created(kind, a_id), created(kind, b_id))):
            assert time.monotonic() < deadline, f"no {kind} created events within 60 s: {pair}"
            time.sleep(0.5)
        assert pair[0] == pair[1], kind


def test_the_recent_scheduler_takes_a_new_deployment_only_if_it_lacks_runs(server: Server) -> None:
    """Prefect's recent-deployments loop takes every deployment updated in its window; ours
    (``recent_deployments``, in the server and services processes) only those its main loop
    finds lacking runs. A deployment the bulk route made with its first runs is left alone; one
    whose schedule can have no run yet (29 February, beyond the scheduler's horizon) is taken,
    and Prefect's query takes both. The patch replaces what Prefect's loop calls by name."""
    loop = inspect.unwrap(scheduler.schedule_recent_deployments)
    assert "_get_select_recent_deployments_to_schedule_query" in loop.__code__.co_names
    assert recent_deployments.PREFECTS.__module__ == scheduler.__name__
    pool = "contract-recent"
    never = {"schedule": {"cron": "0 0 29 2 *", "timezone": "UTC"}, "active": True}
    lacking = deployment(server, pool, schedules=[never])
    flow_id = post(server, "flows/", {"name": f"contract-{pool}"})["id"]
    hourly = {"schedule": {"interval": 3600.0, "timezone": "UTC"}, "active": True}
    made = {"name": f"d-{uuid.uuid4().hex[:6]}", "flow_id": flow_id, "work_pool_name": pool,
            "schedules": [hourly]}  # fmt: skip
    # From tomorrow: a first run due at once would pass in a moment and leave it lacking one.
    since = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    body = {"deployments": [{"deployment": made, "schedule_from": since}]}
    [with_runs] = post(server, "taskscheduler/deployments/bulk", body)["ids"]
    db = provide_database_interface()

    async def taken(query: Any) -> set[str]:
        engine = create_async_engine(_asyncpg(server.url))
        try:
            async with engine.connect() as conn:
                return {str(i) for i in (await conn.execute(query)).scalars()}
        finally:
            await engine.dispose()

    window = 600.0  # both were updated seconds ago
    theirs = asyncio.run(taken(recent_deployments.PREFECTS(db, 1000, window)))
    ours = asyncio.run(taken(recent_deployments.query(db, 1000, window)))
    assert {lacking, with_runs} <= theirs
    assert lacking in ours and with_runs not in ours


def test_a_claim_marks_its_pool_polled_and_its_deployments_ready_as_a_workers_poll_does(
    server: Server,
) -> None:
    """A pool polled by a Prefect worker (``get_scheduled_flow_runs``) and one claimed from by
    the fast lane: both queues end up ready with a recorded poll, both deployments ready with a
    ``last_polled`` and their ``updated`` untouched, and both publish the same ready events."""
    since = dt.datetime.now(dt.UTC)
    theirs, ours = "contract-ready-worker", "contract-ready-fast"
    deployments = {theirs: deployment(server, theirs), ours: deployment(server, ours)}
    before = {
        pool: server.rows("SELECT * FROM deployment WHERE id = :id", id=d)[0]
        for pool, d in deployments.items()
    }
    assert {row["status"] for row in before.values()} == {"NOT_READY"}
    post(server, f"work_pools/{theirs}/get_scheduled_flow_runs", {})
    post(server, "taskscheduler/fast/claim", {"pool": ours, "before": since.isoformat()})

    def marked(pool: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        [row] = server.rows("SELECT * FROM deployment WHERE id = :id", id=deployments[pool])
        [queue] = server.rows(
            "SELECT wq.* FROM work_queue wq JOIN work_pool wp ON wp.id = wq.work_pool_id"
            " WHERE wp.name = :pool",
            pool=pool,
        )
        done = row["status"] == "READY" and queue["last_polled"] is not None
        return (row, queue) if done else None

    deadline = time.monotonic() + 60
    while not (marked(theirs) and marked(ours)) and time.monotonic() < deadline:
        time.sleep(0.5)
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for pool in (theirs, ours):
        rows = marked(pool)
        assert rows is not None, (pool, server.rows("SELECT status, last_polled FROM deployment"))
        found[pool] = rows
    for pool, (row, queue) in found.items():
        assert row["last_polled"] > since and row["updated"] == before[pool]["updated"], pool
        assert queue["status"] == "READY" and queue["last_polled"] > since, pool

    def ready_events(name: str, resource: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = post(
                server,
                "events/filter",
                {
                    "filter": {
                        "event": {"name": [name]},
                        "resource": {"id": [resource]},
                        "occurred": {"since": since.isoformat()},
                    }
                },
            )["events"]
            if events:
                return list(events)
            time.sleep(0.5)
        raise AssertionError(f"no {name} event of {resource}")

    def shape(event: dict[str, Any]) -> tuple[list[str], list[str]]:
        roles = sorted(r["prefect.resource.role"] for r in event["related"])
        return sorted(event["resource"]), roles

    [a], [b] = (
        ready_events("prefect.deployment.ready", f"prefect.deployment.{deployments[pool]}")
        for pool in (theirs, ours)
    )
    assert shape(a) == shape(b) and a["payload"] == b["payload"]
    [qa], [qb] = (
        ready_events("prefect.work-queue.ready", f"prefect.work-queue.{found[pool][1]['id']}")
        for pool in (theirs, ours)
    )
    assert shape(qa) == shape(qb)
