"""The fast worker on the set-based path: one claim, one conditional start, one finish.

The worker's own collaborators against a stand-in for the set-based endpoints that records
each call and answers as ``_prefect.server.fastpath`` does (a start is conditional on the
Pending state the claim wrote; a repeat with the same transition id answers the first call).
The server's side is covered by tests/integration/test_fastpath_contract.py, the whole lane by
tests/integration/test_fastlane.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any, cast

import httpx

from taskscheduler._prefect import rest as _api
from taskscheduler.fastlane.settings import FastLaneSettings
from taskscheduler.fastlane.worker import FastWorker
from taskscheduler.policy import JobParameters

JSON = dict[str, Any]
TASK = JobParameters(task="t", entrypoint="flows/t.py:main")


class SetApi:
    """The set-based endpoints over a dict of runs: ``{id: {"state": type, "state_id": id}}``."""

    def __init__(self, due: dict[str, float], *, limited: Sequence[str] = ()) -> None:
        self.runs = {
            run_id: {"state": "SCHEDULED", "state_id": str(uuid.uuid4()), "due": at}
            for run_id, at in due.items()
        }
        self.limited = list(limited)
        self.calls: list[tuple[str, JSON]] = []
        self.lose_answers = 0  # the next calls are applied but their answers lost
        self.finished_logs: list[JSON] = []
        self.claimed_by: dict[str, list[str]] = {}

    def _answer(self, answer: Any) -> Any:
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx.ReadTimeout("answer lost")
        return answer

    async def fast_claim(
        self, pool: str, before: float, limit: int, transition_id: str, *, repeat: bool = False
    ) -> JSON:
        self.calls.append(("claim", {"transition_id": transition_id, "repeat": repeat}))
        if repeat and transition_id in self.claimed_by:
            ids = self.claimed_by[transition_id]
        else:
            ids = [
                i
                for i, r in self.runs.items()
                if r["state"] == "SCHEDULED" and r["due"] <= before and i not in self.limited
            ][:limit]
            for i in ids:
                self.runs[i].update(state="PENDING", state_id=str(uuid.uuid4()))
            self.claimed_by[transition_id] = ids
        claimed = [
            {
                "id": i,
                "pending_state_id": self.runs[i]["state_id"],
                "scheduled_time": _api.iso(self.runs[i]["due"]),
                "expected_start_time": _api.iso(self.runs[i]["due"]),
                "deployment_id": "d",
                "parameters": TASK.as_flow_parameters() if i != "odd" else {"x": 1},
                "run_count": 0,
                "auto_scheduled": False,
            }
            for i in ids
        ]
        limited = [i for i in self.limited if self.runs[i]["state"] == "SCHEDULED"]
        return self._answer({"claimed": claimed, "limited": limited, "cancelled_orphans": 0})

    async def fast_start(self, runs: list[JSON], transition_id: str) -> dict[str, str]:
        self.calls.append(("start", {"runs": [r["id"] for r in runs]}))
        started = {}
        for move in runs:
            run = self.runs[move["id"]]
            if run["state_id"] == move["state_id"]:
                run.update(state="RUNNING", state_id=str(uuid.uuid4()), tid=transition_id)
                started[move["id"]] = run["state_id"]
            elif run.get("tid") == transition_id:
                started[move["id"]] = run["state_id"]
        return cast(dict[str, str], self._answer(started))

    async def fast_finish(self, runs: list[JSON], logs: list[JSON], transition_id: str) -> None:
        self.calls.append(("finish", {"runs": [r["id"] for r in runs], "logs": len(logs)}))
        self.finished_logs += logs
        for move in runs:
            run = self.runs[move["id"]]
            if run["state_id"] == move["state_id"]:
                run.update(state="COMPLETED", state_id=str(uuid.uuid4()))
        self._answer(None)

    async def runs_not_in(self, run_ids: Sequence[str], state_types: Sequence[str]) -> list[JSON]:
        self.calls.append(("check", {"runs": list(run_ids)}))
        return [
            {"id": i, "state_type": self.runs[i]["state"]}
            for i in run_ids
            if self.runs[i]["state"] not in state_types
        ]

    async def scheduled_runs(self, pool: str, before: float, limit: int) -> list[JSON]:
        self.calls.append(("rest-poll", {}))
        return [
            {
                "id": i,
                "deployment_id": "d-limited",
                "expected_start_time": _api.iso(r["due"]),
                "next_scheduled_start_time": _api.iso(r["due"]),
                "run_count": 0,
                "parameters": TASK.as_flow_parameters(),
            }
            for i, r in self.runs.items()
            if r["state"] == "SCHEDULED"
        ]

    async def concurrency_limit_names(self) -> list[str]:
        return ["deployment:d-limited"]

    async def bulk_set_state(
        self, run_ids: Sequence[str], state: JSON, *, force: bool = False
    ) -> dict[str, JSON]:
        self.calls.append(("rest-" + state["type"], {"runs": list(run_ids)}))
        for i in run_ids:
            self.runs[i]["state"] = state["type"]
        return {i: {"status": "ACCEPT", "state": state} for i in run_ids}

    async def set_state(self, run_id: str, state: JSON, *, force: bool = False) -> JSON:
        self.calls.append(("set_state", {"runs": [run_id], "type": state["type"]}))
        self.runs[run_id]["state"] = state["type"]
        return {"status": "ACCEPT", "state": state}

    async def close(self) -> None:
        pass

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


class RecordingChild:
    """A warm process that records the jobs sent to it."""

    def __init__(self) -> None:
        self.job: Any = None
        self.sent: list[str] = []

    async def send(self, message: JSON) -> None:
        self.sent.append(message["id"])


def worker_on(
    api: SetApi, processes: int = 4, **settings: Any
) -> tuple[FastWorker, list[RecordingChild]]:
    worker = FastWorker(FastLaneSettings(processes=processes, **settings), cast(_api.Api, api))
    children = [RecordingChild() for _ in range(processes)]
    for child in children:
        worker.children.alive.add(child)  # type: ignore[arg-type]
        worker.children.idle.append(child)  # type: ignore[arg-type]
    return worker, children


async def release_for(worker: FastWorker, seconds: float) -> None:
    loop = asyncio.create_task(worker.release.run())
    await asyncio.sleep(seconds)
    worker.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(loop, 2)


def sent(children: list[RecordingChild]) -> list[str]:
    return sorted(run_id for child in children for run_id in child.sent)


async def test_a_poll_is_one_claim_and_each_run_is_held_to_its_own_time() -> None:
    now = time.time()
    own = {"a": now + 3.0, "b": now + 1.0}
    api = SetApi(own)
    worker, _ = worker_on(api)
    await worker.poll()
    assert api.kinds() == ["claim"]
    held = worker.release.held
    assert {i: round(j.due, 3) for i, j in held.items()} == {i: round(t, 3) for i, t in own.items()}
    assert all(j.state_id == api.runs[i]["state_id"] for i, j in held.items())


async def test_a_claim_whose_answer_is_lost_is_repeated_and_its_runs_are_held() -> None:
    api = SetApi({"a": time.time() + 1, "b": time.time() + 1})
    api.lose_answers = 1
    worker, _ = worker_on(api)
    await worker.poll()
    (_, first), (_, repeat) = api.calls
    assert repeat == {"transition_id": first["transition_id"], "repeat": True}
    assert sorted(worker.release.held) == ["a", "b"]  # none left Pending without a holder


async def test_runs_of_limited_tasks_go_prefects_rest_way_alone() -> None:
    due = time.time() + 1
    api = SetApi({"free": due, "lim": due}, limited=["lim"])
    worker, _ = worker_on(api)
    await worker.poll()
    assert api.kinds() == ["claim", "rest-poll", "rest-PENDING"]
    assert api.calls[-1][1]["runs"] == ["lim"]
    assert worker.release.held["free"].state_id is not None
    assert worker.release.held["lim"].state_id is None


async def test_a_claimed_run_that_is_no_job_is_failed_not_held() -> None:
    api = SetApi({"ok": time.time() + 1, "odd": time.time() + 1})
    worker, _ = worker_on(api)
    await worker.poll()
    assert list(worker.release.held) == ["ok"]
    [(run_id, state, _)] = worker.reporter.finals
    assert (run_id, state["type"]) == ("odd", "FAILED")


async def test_held_runs_start_in_one_conditional_call_with_no_check_before() -> None:
    due = time.time() + 0.3
    api = SetApi({"a": due, "b": due, "c": due})
    worker, children = worker_on(api)
    await worker.poll()
    api.runs["b"].update(state="CANCELLING", state_id=str(uuid.uuid4()))  # cancelled while held
    api.calls.clear()
    await release_for(worker, 1.0)
    assert api.kinds() == ["start", "check"], api.calls  # the check only asks why b did not start
    assert sent(children) == ["a", "c"]
    assert {i: worker.jobs.running[i].state_id for i in ("a", "c")} == {
        i: api.runs[i]["state_id"] for i in ("a", "c")
    }
    # The user's cancel is completed; the run never started.
    assert [(i, s["type"]) for i, s, _ in worker.reporter.finals] == [("b", "CANCELLED")]


async def test_a_start_whose_answer_is_lost_is_repeated_and_its_runs_run() -> None:
    api = SetApi({"a": time.time() + 0.2})
    worker, children = worker_on(api)
    await worker.poll()
    api.lose_answers = 1
    await release_for(worker, 1.5)
    assert api.kinds().count("start") == 2
    assert sent(children) == ["a"]  # counted as started by the repeat, run once


async def test_logs_and_completions_go_in_one_finish_and_are_kept_if_it_fails() -> None:
    api = SetApi({"a": time.time() + 0.1})
    worker, _ = worker_on(api)
    await worker.poll()
    await release_for(worker, 0.6)
    job = worker.jobs.running["a"]
    worker.reporter.log("a", 20, "user", "hello")
    worker.jobs.end_attempt(job, ok=True, error=None)
    api.calls.clear()
    api.lose_answers = 1
    await worker.reporter.flush()
    assert worker.reporter.finals and worker.reporter.logs  # kept for the next flush
    await worker.reporter.flush()
    assert api.calls == [("finish", {"runs": ["a"], "logs": 2})] * 2
    assert api.runs["a"]["state"] == "COMPLETED" and not worker.reporter.finals
    # The resent lines carry the ids they were first sent with: the server stores them once.
    ids = [line["id"] for line in api.finished_logs]
    assert len(set(ids)) == 2 and ids[:2] == ids[2:]


class SlowStartApi(SetApi):
    """Answers each start after ``delay`` seconds, as a busy server does."""

    delay = 0.3

    async def fast_start(self, runs: list[JSON], transition_id: str) -> dict[str, str]:
        await asyncio.sleep(self.delay)
        return await super().fast_start(runs, transition_id)


async def _starts_of_runs_due_apart(start_calls: int) -> list[list[str]]:
    """The start calls' runs for four runs due 50 ms apart on a server answering in 300 ms."""
    now = time.time()
    api = SlowStartApi({name: now + 0.2 + 0.05 * n for n, name in enumerate("abcd")})
    worker, _ = worker_on(api, start_calls=start_calls)
    await worker.poll()
    await release_for(worker, 1.5)
    return [call["runs"] for kind, call in api.calls if kind == "start"]


async def test_runs_due_while_a_start_is_answered_go_together_in_the_next() -> None:
    assert await _starts_of_runs_due_apart(start_calls=1) == [["a"], ["b", "c", "d"]]
    assert await _starts_of_runs_due_apart(start_calls=4) == [["a"], ["b"], ["c"], ["d"]]
