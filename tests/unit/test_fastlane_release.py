"""How the fast worker releases held runs on Prefect's REST path: checked just ahead, one
round-trip at the instant (the set-based path: tests/unit/test_fastlane_set_based.py).

The worker's own loops against a stand-in for the Prefect API that records each call; the
real server's side of the same rules is covered by tests/integration/test_fastlane.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any, cast

from taskscheduler._prefect import rest as _api
from taskscheduler.fastlane.settings import FastLaneSettings
from taskscheduler.fastlane.worker import FastWorker, Job
from taskscheduler.policy import JobParameters

JSON = dict[str, Any]


class RecordingApi:
    """The two calls a release makes, answering from a dict of run states."""

    def __init__(
        self,
        states: dict[str, str],
        scheduled: list[JSON] | None = None,
        limits: Sequence[str] = (),
    ) -> None:
        self.states = states
        self.scheduled = scheduled or []
        self.limits = list(limits)
        self.calls: list[tuple[str, list[str], float]] = []
        self.proposed: list[JSON] = []

    async def scheduled_runs(self, pool: str, before: float, limit: int) -> list[JSON]:
        return self.scheduled

    async def concurrency_limit_names(self) -> list[str]:
        self.calls.append(("limits", [], time.time()))
        return self.limits

    async def runs_not_in(self, run_ids: Sequence[str], state_types: Sequence[str]) -> list[JSON]:
        self.calls.append(("check", list(run_ids), time.time()))
        return [
            {"id": i, "state_type": self.states[i]}
            for i in run_ids
            if self.states[i] not in state_types
        ]

    async def bulk_set_state(
        self, run_ids: Sequence[str], state: JSON, *, force: bool = False
    ) -> dict[str, JSON]:
        self.calls.append((state["type"], list(run_ids), time.time()))
        self.proposed.append(json.loads(json.dumps(state)))
        details = state["state_details"]
        if state["type"] == "PENDING" and not details.get("scheduled_time"):
            # As Prefect 3.9 does: the first run's time, copied into the one shared state.
            first = next(r for r in self.scheduled if r["id"] == run_ids[0])
            details["scheduled_time"] = first["next_scheduled_start_time"]
        for i in run_ids:
            self.states[i] = state["type"]
        return {i: {"status": "ACCEPT", "state": state} for i in run_ids}

    async def set_state(self, run_id: str, state: JSON, *, force: bool = False) -> JSON:
        self.calls.append((state["type"], [run_id], time.time()))
        return {"status": "ACCEPT", "state": state}

    async def create_logs(self, logs: list[JSON]) -> None:
        pass

    async def close(self) -> None:
        pass


class RecordingChild:
    """A warm process that records the jobs sent to it."""

    def __init__(self) -> None:
        self.job: Job | None = None
        self.sent: list[str] = []

    async def send(self, message: JSON) -> None:
        self.sent.append(message["id"])


TASK = JobParameters(task="t", entrypoint="flows/t.py:main")


async def worker_on(api: RecordingApi, settings: FastLaneSettings | None = None) -> FastWorker:
    """A fast worker that speaks to ``api`` instead of a server."""
    return FastWorker(settings or FastLaneSettings(set_based=False), cast(_api.Api, api))


async def released(
    states: dict[str, str], due_in: dict[str, float], *, check_ahead: float, processes: int = 2
) -> tuple[RecordingApi, list[RecordingChild], FastWorker]:
    """Hold runs due ``due_in`` seconds from now and let the worker release them."""
    api = RecordingApi(states)
    settings = FastLaneSettings(check_ahead=check_ahead, processes=processes, set_based=False)
    worker = await worker_on(api, settings)
    children = [RecordingChild() for _ in range(processes)]
    for child in children:
        worker.children.alive.add(child)  # type: ignore[arg-type]
        worker.children.idle.append(child)  # type: ignore[arg-type]
    now = time.time()
    for run_id, delay in due_in.items():
        job = Job(id=run_id, due=now + delay, params=TASK, attempt=1, claimed=now)
        worker.release.hold(job)
    loops = [asyncio.create_task(worker.release.run()), asyncio.create_task(worker.release.check())]
    await asyncio.sleep(max(due_in.values()) + 0.5)
    worker.stop()
    for loop in loops:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(loop, 2)
    return api, children, worker


def scheduled(own: dict[str, float], deployment: dict[str, str] | None = None) -> list[JSON]:
    """Runs as ``get_scheduled_flow_runs`` lists them, each due at ``own[id]``."""
    return [
        {
            "id": run_id,
            "deployment_id": (deployment or {}).get(run_id, "d-free"),
            "expected_start_time": _api.iso(at - 60),
            "next_scheduled_start_time": _api.iso(at),
            "run_count": 0,
            "parameters": TASK.as_flow_parameters(),
        }
        for run_id, at in own.items()
    ]


async def polled(api: RecordingApi) -> FastWorker:
    """A worker that has polled ``api`` once."""
    worker = await worker_on(api)
    await worker.poll()
    return worker


def sent(children: list[RecordingChild]) -> list[str]:
    return sorted(run_id for child in children for run_id in child.sent)


async def test_a_run_checked_ahead_is_released_with_one_call_at_its_instant() -> None:
    api, children, _ = await released({"a": "PENDING"}, {"a": 1.0}, check_ahead=0.3)
    kinds = [(kind, ids) for kind, ids, _ in api.calls]
    assert kinds == [("check", ["a"]), ("RUNNING", ["a"])]
    checked_at, running_at = api.calls[0][2], api.calls[1][2]
    assert running_at - checked_at >= 0.1  # the check was made ahead, not at the instant
    assert sent(children) == ["a"]


async def test_without_check_ahead_each_batch_is_checked_at_release() -> None:
    api, children, _ = await released({"a": "PENDING"}, {"a": 0.3}, check_ahead=0)
    kinds = [(kind, ids) for kind, ids, _ in api.calls]
    assert kinds == [("check", ["a"]), ("RUNNING", ["a"])]
    assert api.calls[1][2] - api.calls[0][2] < 0.1  # back to back, at the instant
    assert sent(children) == ["a"]


async def test_a_run_cancelled_while_held_is_found_ahead_and_never_started() -> None:
    api, children, worker = await released(
        {"a": "CANCELLING", "b": "CANCELLED", "c": "PENDING"},
        {"a": 0.5, "b": 0.5, "c": 0.5},
        check_ahead=0.3,
        processes=4,
    )
    assert [(kind, ids) for kind, ids, _ in api.calls if kind == "RUNNING"] == [("RUNNING", ["c"])]
    assert sent(children) == ["c"]
    # The user's cancel is completed for the one left Cancelling; the other is left alone.
    assert [(run_id, state["type"]) for run_id, state, _ in worker.reporter.finals] == [
        ("a", "CANCELLED")
    ]


async def test_a_backlog_is_checked_only_as_far_as_the_runs_next_in_line() -> None:
    due = {f"r{n:03}": 0.05 for n in range(300)}
    api, _, _ = await released(dict.fromkeys(due, "PENDING"), due, check_ahead=0.3, processes=2)
    checks = [ids for kind, ids, _ in api.calls if kind == "check"]
    assert checks, "the runs next in line were checked"
    assert max(len(ids) for ids in checks) <= 4  # two per warm process, never the whole backlog


async def test_each_claimed_run_is_held_to_its_own_time_not_to_its_batchs() -> None:
    """Prefect's bulk endpoint gives every run of a call one Pending state's scheduled time.

    Each run is held to its own (a retry's Scheduled time, not its first expected start); the
    Pending state proposed names the batch's earliest, so the server never holds one back.
    """
    now = time.time()
    own = {"a": now + 3.0, "b": now + 1.0, "c": now + 2.0}
    api = RecordingApi(dict.fromkeys(own, "SCHEDULED"), scheduled(own))
    worker = await polled(api)
    assert {run_id: round(job.due, 3) for run_id, job in worker.release.held.items()} == {
        run_id: round(at, 3) for run_id, at in own.items()
    }
    [claim] = api.proposed
    assert claim["type"] == "PENDING"
    assert claim["state_details"]["scheduled_time"] == _api.iso(own["b"])


async def test_a_limited_tasks_runs_get_each_state_in_a_call_of_their_own() -> None:
    """A bulk call's runs share one proposed state, and Prefect writes a limited run's
    concurrency lease into it: a run orchestrated after it in the same call would carry that
    lease and release it when it ends, with the limited run still going.
    """
    due = time.time() + 2.0
    own = {"l1": due, "l2": due, "f1": due, "f2": due, "f3": due}
    deployment = {"l1": "d-limited", "l2": "d-limited"}
    api = RecordingApi(
        dict.fromkeys(own, "SCHEDULED"),
        scheduled(own, deployment),
        limits=["deployment:d-limited", "some-other-limit"],
    )
    worker = await polled(api)
    claims = sorted(sorted(ids) for kind, ids, _ in api.calls if kind == "PENDING")
    assert claims == [["f1", "f2", "f3"], ["l1"], ["l2"]]
    assert sorted(worker.release.held) == sorted(own)
    # Every later state too: Prefect copies a run's lease into the proposed state of each.
    api.calls.clear()
    await worker.proposals.propose(sorted(own), {"type": "RUNNING", "state_details": {}})
    worker.reporter.finals = [(run_id, {"type": "COMPLETED"}, None) for run_id in sorted(own)]
    await worker.reporter.flush()
    calls = sorted((kind, sorted(ids)) for kind, ids, _ in api.calls)
    assert calls == [
        ("COMPLETED", ["f1", "f2", "f3"]),
        ("COMPLETED", ["l1"]),
        ("COMPLETED", ["l2"]),
        ("RUNNING", ["f1", "f2", "f3"]),
        ("RUNNING", ["l1"]),
        ("RUNNING", ["l2"]),
    ]
    assert not worker.proposals.alone  # forgotten once their final state is sent


async def test_a_new_task_with_a_limit_is_known_from_its_first_run() -> None:
    due = time.time() + 2.0
    api = RecordingApi({"f1": "SCHEDULED"}, scheduled({"f1": due}))
    worker = await polled(api)
    # Created since: a task with a limit, and one more run of the task already seen.
    api.limits = ["deployment:d-new"]
    api.states.update(n1="SCHEDULED", n2="SCHEDULED", f2="SCHEDULED")
    api.scheduled = scheduled(dict.fromkeys(["n1", "n2", "f2"], due), dict(n1="d-new", n2="d-new"))
    api.calls.clear()
    await worker.poll()
    calls = sorted((kind, sorted(ids)) for kind, ids, _ in api.calls)
    assert calls == [("PENDING", ["f2"]), ("PENDING", ["n1"]), ("PENDING", ["n2"]), ("limits", [])]
    api.scheduled = scheduled({"f3": due})
    api.states["f3"] = "SCHEDULED"
    api.calls.clear()
    await worker.poll()
    assert [kind for kind, _, _ in api.calls] == ["PENDING"]  # known deployment: no new read
