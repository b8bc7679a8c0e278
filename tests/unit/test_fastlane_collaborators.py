"""The fast worker's collaborators one by one: a job's life, the reporter, proposals, children.

The release path as a whole is covered by test_fastlane_release.py, the real server's side by
tests/integration/test_fastlane.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, cast

import httpx
import pytest

from taskscheduler._prefect import rest as _api
from taskscheduler.fastlane.children import Child, Children
from taskscheduler.fastlane.claims import Claims, Proposals
from taskscheduler.fastlane.jobs import CANCELLED_BY_USER, Job, Jobs
from taskscheduler.fastlane.loop import Loop
from taskscheduler.fastlane.reporter import LOG_CHUNK, Reporter
from taskscheduler.fastlane.settings import FastLaneSettings
from taskscheduler.policy import JobParameters

JSON = dict[str, Any]
NOW = time.time()


class Api:
    """What the collaborators send, recorded; ``fail_logs`` makes sending logs fail."""

    def __init__(self, scheduled: list[JSON] | None = None) -> None:
        self.scheduled = scheduled or []
        self.fail_logs = False
        self.calls: list[tuple[str, Any]] = []

    async def create_logs(self, logs: list[JSON]) -> None:
        if self.fail_logs:
            raise httpx.ConnectError("down")
        self.calls.append(("logs", [entry["message"] for entry in logs]))

    async def bulk_set_state(
        self, run_ids: Sequence[str], state: JSON, *, force: bool = False
    ) -> dict[str, JSON]:
        self.calls.append(("bulk", (sorted(run_ids), state["type"])))
        return {i: {"status": "ACCEPT", "state": state} for i in run_ids}

    async def set_state(self, run_id: str, state: JSON, *, force: bool = False) -> JSON:
        self.calls.append(("one", (run_id, state, force)))
        return {"status": "ACCEPT", "state": state}

    async def scheduled_runs(self, pool: str, before: float, limit: int) -> list[JSON]:
        return self.scheduled

    async def concurrency_limit_names(self) -> list[str]:
        return []

    async def code_blocks(self, names: Sequence[str]) -> dict[str, JSON]:
        self.calls.append(("codes", list(names)))
        return {n: {"source": n} for n in names if n != "gone-v1"}


def job(attempt: int = 1, **params: Any) -> Job:
    return Job(
        id="r1",
        due=NOW,
        params=JobParameters(task="greet", **params),
        attempt=attempt,
        claimed=NOW,
    )


def collaborators(
    api: Api | None = None, settings: FastLaneSettings | None = None
) -> tuple[Api, Proposals, Reporter, Jobs]:
    api = api or Api()
    proposals = Proposals(cast(_api.Api, api))
    reporter = Reporter(cast(_api.Api, api), proposals, set_based=False)
    jobs = Jobs(settings or FastLaneSettings(name="w1"), cast(_api.Api, api), reporter)
    return api, proposals, reporter, jobs


class FakeChild:
    def __init__(self) -> None:
        self.job: Job | None = None
        self.killed = False

    def kill(self) -> None:
        self.killed = True


# ---- a job ------------------------------------------------------------------------------------


def test_a_claimed_run_becomes_a_typed_job_held_to_its_own_time() -> None:
    run = {
        "id": "r1",
        "deployment_id": "d1",
        "expected_start_time": "2026-01-01T00:00:00Z",
        "next_scheduled_start_time": "2026-01-01T00:01:00Z",
        "auto_scheduled": True,
        "run_count": 2,
        "parameters": {"task": "greet", "code": "greet-v3", "retries": 4, "misfire": "latest"},
    }
    claimed = Job.claimed_run(run, claimed=NOW)
    assert claimed.due == _api.epoch("2026-01-01T00:01:00Z")  # the retry's time, not the first
    assert claimed.attempt == 3 and claimed.claimed == NOW
    assert (claimed.params.code, claimed.params.retries, claimed.params.version) == (
        "greet-v3",
        4,
        3,
    )
    assert claimed.run == {
        "id": "r1",
        "deployment_id": "d1",
        "expected_start_time": "2026-01-01T00:00:00Z",
        "auto_scheduled": True,
    }
    with pytest.raises(ValueError, match="no task"):
        Job.claimed_run({**run, "parameters": {"name": "other-flow"}}, claimed=NOW)


async def test_the_code_of_held_jobs_is_read_once_in_one_call() -> None:
    api, _, _, jobs = collaborators()
    jobs.codes["greet-v1"] = {"source": "cached"}
    held = [job(code=name) for name in ("greet-v1", "greet-v2", "other-v1", "greet-v2", "gone-v1")]
    await jobs.load_codes([*held, job(entrypoint="flows/a.py:main")])
    await jobs.load_codes(held[:3])  # all known now: no call
    assert api.calls == [("codes", ["gone-v1", "greet-v2", "other-v1"])]
    assert sorted(jobs.codes) == ["greet-v1", "greet-v2", "other-v1"]


async def test_the_code_cache_drops_the_least_recently_used_versions_beyond_its_size() -> None:
    api, _, _, jobs = collaborators(settings=FastLaneSettings(name="w1", code_cache_mb=1))
    big = "x" * 300_000  # four of these do not fit in 1 MB
    for name in ("a-v1", "b-v1", "c-v1"):
        jobs.codes[name] = {"source": big}
    assert jobs.codes.get("a-v1") is not None  # a used again: b is now the oldest
    jobs.codes["d-v1"] = {"source": big}
    assert sorted(jobs.codes) == ["a-v1", "c-v1", "d-v1"]
    assert jobs.codes.currsize <= 2**20
    await jobs.load_codes([job(code="b-v1")])  # dropped: read again when needed
    assert api.calls == [("codes", ["b-v1"])]


def test_the_run_message_prefers_the_code_blocks_entry() -> None:
    one = job(attempt=2, code="greet-v1", entry="other", parameters={"who": "ada"})
    one.secrets = {"TOKEN": "t0k"}
    message = one.run_message({"source": "def go(): pass", "entry": "go", "version": 1})
    assert message == {
        "op": "run",
        "id": "r1",
        "task": "greet",
        "code": "greet-v1",
        "source": "def go(): pass",
        "entry": "go",
        "entrypoint": None,
        "parameters": {"who": "ada"},
        "secrets": {"TOKEN": "t0k"},
        "attempt": 2,
    }
    assert job(entry="other").run_message(None)["entry"] == "other"
    assert job().run_message(None)["source"] is None


def test_a_failed_attempt_with_retries_left_backs_off_by_the_retry_policy() -> None:
    one = job(attempt=2, retries=3, retry_delay=10, retry_jitter=0.5)
    state, line = one.end_of_attempt(ok=False, error="boom", rng=random.Random(7))
    delay = one.params.retry.next_delay(2, rng=random.Random(7))
    assert 20 <= delay <= 30
    assert (state["type"], state["name"], state["message"]) == (
        "SCHEDULED",
        "AwaitingRetry",
        "boom",
    )
    at = _api.epoch(state["state_details"]["scheduled_time"])
    assert abs(at - (time.time() + delay)) < 1
    assert line == f"Retry 2/3 will start in {delay:.1f} seconds"


def test_the_last_attempt_fails_under_its_name_and_a_success_completes() -> None:
    last = job(attempt=2, retries=1)
    assert last.end_of_attempt(ok=False, error="boom", name="TimedOut") == (
        {"type": "FAILED", "name": "TimedOut", "message": "boom"},
        None,
    )
    assert last.end_of_attempt(ok=True, error=None) == ({"type": "COMPLETED"}, None)


# ---- the jobs running -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("killed", "code", "expected"),
    [
        ("cancel", -9, [("Cancelled: the job's process was stopped", CANCELLED_BY_USER)]),
        ("gone", -9, []),
        (
            "shutdown",
            -9,
            ["The warm process running this job exited unexpectedly (the fast worker stopped)"],
        ),
        (None, 3, ["The warm process running this job exited unexpectedly (exit code 3)"]),
    ],
)
def test_a_lost_process_ends_its_job_by_why_it_was_killed(
    killed: str | None, code: int, expected: list[Any]
) -> None:
    _, _, reporter, jobs = collaborators()
    one = job()
    one.killed = killed
    jobs.running[one.id] = one
    jobs.end_killed(one, code)
    assert one.id not in jobs.running
    logged = [entry["message"] for entry in reporter.logs]
    if killed == "cancel":
        assert [(logged[0], reporter.finals[0][1])] == expected
    elif expected:
        assert logged == expected
        assert reporter.finals == [("r1", {"type": "CRASHED", "message": expected[0]}, None)]
    else:
        assert (logged, reporter.finals) == ([], [])


async def test_a_timed_out_attempt_is_retried_like_a_failure() -> None:
    _, _, reporter, jobs = collaborators()
    one = job(retries=1, timeout=2.5)
    one.killed = "timeout"
    one.timer = asyncio.get_running_loop().call_later(60, lambda: None)
    jobs.running[one.id] = one
    jobs.end_killed(one, -9)
    assert one.timer.cancelled()
    assert (reporter.logs[0]["level"], reporter.logs[0]["message"]) == (
        logging.ERROR,
        "Job timed out after 2.5 seconds",
    )
    [(run_id, state, _)] = reporter.finals
    assert (run_id, state["name"], state["message"]) == (
        "r1",
        "AwaitingRetry",
        "Job timed out after 2.5 seconds",
    )


def test_a_running_job_left_behind_has_its_process_killed_once() -> None:
    _, _, _, jobs = collaborators()
    one, child = job(), FakeChild()
    one.child = cast(Child, child)
    jobs.running[one.id] = one
    jobs.left_behind("r1", "CANCELLING")
    assert child.killed and one.killed == "cancel"
    child.killed = False
    jobs.left_behind("r1", "CANCELLED")  # already being killed
    assert not child.killed and one.killed == "cancel"
    jobs.left_behind("unknown", "CANCELLING")


# ---- the reporter and proposals ---------------------------------------------------------------


async def test_logs_go_first_in_chunks_then_completions_in_bulk_and_others_one_by_one() -> None:
    api, proposals, reporter, _ = collaborators()
    proposals.alone.update({"c3", "f1"})
    for n in range(LOG_CHUNK + 1):
        reporter.log("c1", logging.INFO, "x", f"line {n}")
    failed = {"type": "FAILED", "message": "boom"}
    for run_id in ("c1", "c2", "c3"):
        reporter.final(run_id, {"type": "COMPLETED"})
    reporter.final("f1", failed)
    await reporter.flush()
    kinds = [kind for kind, _ in api.calls]
    assert kinds[:2] == ["logs", "logs"]
    assert [len(lines) for kind, lines in api.calls[:2]] == [LOG_CHUNK, 1]
    assert sorted(str(args) for _, args in api.calls[2:]) == sorted(
        [
            str((["c1", "c2"], "COMPLETED")),
            str((["c3"], "COMPLETED")),
            str(("f1", failed, False)),
        ]
    )
    assert not proposals.alone and not reporter.logs and not reporter.finals


async def test_when_logs_cannot_be_sent_they_and_the_final_states_are_kept() -> None:
    api, _, reporter, _ = collaborators()
    reporter.log("r1", logging.INFO, "x", "first")
    reporter.final("r1", {"type": "COMPLETED"})
    api.fail_logs = True
    await reporter.flush()
    reporter.log("r1", logging.INFO, "x", "second")
    assert api.calls == []
    api.fail_logs = False
    await reporter.flush()
    assert api.calls == [("logs", ["first", "second"]), ("bulk", (["r1"], "COMPLETED"))]


def test_a_refused_repeat_of_our_own_transition_counts_as_won() -> None:
    state = {"type": "PENDING", "state_details": {"transition_id": "t1"}}
    ours = {"type": "PENDING", "state_details": {"transition_id": "t1"}}
    theirs = {"type": "PENDING", "state_details": {"transition_id": "t2"}}
    assert Proposals.won({"status": "ACCEPT"}, state)
    assert Proposals.won({"status": "REJECT", "state": ours}, state)
    assert not Proposals.won({"status": "ABORT", "state": theirs}, state)
    assert not Proposals.won({"status": "REJECT"}, state)


# ---- claims -----------------------------------------------------------------------------------


async def test_a_claimed_run_that_is_no_job_is_failed_not_held() -> None:
    due = _api.iso(time.time() + 2)
    runs = [
        {"id": i, "expected_start_time": due, "parameters": p}
        for i, p in (("ok", {"task": "greet"}), ("odd", {"x": 1}))
    ]
    api, proposals, reporter, _ = collaborators(Api(runs))
    settings = FastLaneSettings(set_based=False)
    claims = Claims(settings, cast(_api.Api, api), Loop(), proposals, reporter)
    claimed = await claims.poll({}, {})
    assert [j.id for j in claimed] == ["ok"]
    [(run_id, state, _)] = reporter.finals
    assert (run_id, state["type"]) == ("odd", "FAILED")
    assert await claims.poll({"ok": claimed[0]}, {"odd": claimed[0]}) == []  # both are ours


async def test_a_held_run_is_handed_back_at_its_own_time_under_its_attempts_name() -> None:
    api, proposals, reporter, _ = collaborators()
    settings = FastLaneSettings(name="w1")
    claims = Claims(settings, cast(_api.Api, api), Loop(), proposals, reporter)
    await claims.hand_back(job(attempt=1))
    await claims.hand_back(job(attempt=2))
    sent = [args for _, args in api.calls]
    assert [(s["name"], force) for _, s, force in sent] == [
        ("Scheduled", True),
        ("AwaitingRetry", True),
    ]
    assert sent[0][1]["state_details"]["scheduled_time"] == _api.iso(NOW)
    assert sent[0][1]["message"] == "Handed back by stopping fast worker w1"


# ---- children ---------------------------------------------------------------------------------


async def test_a_childs_messages_reach_the_reporter_and_end_its_job() -> None:
    _, _, reporter, jobs = collaborators()
    loop = Loop()
    children = Children(1, loop, cwd=cast(Any, None), reporter=reporter, jobs=jobs)
    child = Child(cast(asyncio.subprocess.Process, None))
    children.alive.add(child)
    children.receive(child, {"op": "ready"})
    assert child.ready.is_set() and children.idle == [child] and loop.wake.is_set()
    one = job()
    children.take(one)
    jobs.running[one.id] = one
    assert children.idle == [] and child.job is one and one.child is child
    children.receive(
        child, {"op": "log", "id": "r1", "level": 20, "name": "n", "message": "hi", "ts": NOW}
    )
    children.receive(child, {"op": "done", "id": "other", "ok": True})  # not its job: ignored
    assert child.job is one and reporter.finals == []
    children.receive(child, {"op": "done", "id": "r1", "ok": True})
    assert child.job is None and children.idle == [child] and one.id not in jobs.running
    assert [e["message"] for e in reporter.logs] == ["hi"]
    assert reporter.finals == [("r1", {"type": "COMPLETED"}, None)]


async def test_a_killed_jobs_done_message_is_ignored_and_a_released_child_is_free() -> None:
    _, _, reporter, jobs = collaborators()
    children = Children(1, Loop(), cwd=cast(Any, None), reporter=reporter, jobs=jobs)
    child = Child(cast(asyncio.subprocess.Process, None))
    children.alive.add(child)
    children.idle.append(child)
    one = job()
    children.take(one)
    one.killed = "timeout"
    children.receive(child, {"op": "done", "id": "r1", "ok": True})
    assert child.job is one and reporter.finals == []  # its reader ends it when it exits
    children.release(one)
    assert one.child is None and child.job is None and children.idle == [child]


async def test_a_sandbox_serves_one_job_and_more_are_kept_warm_for_the_runs_held_ahead() -> None:
    """Single-use: a finished job's sandbox is not handed another job; ``want`` starts a
    sandbox for each run held ahead, between ``count`` and ``most``."""
    _, _, reporter, jobs = collaborators()
    children = Children(
        2, Loop(), cwd=cast(Any, None), reporter=reporter, jobs=jobs, single_use=True, most=5
    )
    started: list[int] = []

    async def spawn() -> None:  # what a real start would add, without a process
        started.append(1)
        children.spawning -= 1
        children.alive.add(Child(cast(asyncio.subprocess.Process, None)))

    children.spawn = spawn  # type: ignore[method-assign]
    children.start()
    await asyncio.sleep(0)
    assert len(children.alive) == 2
    children.want(4)
    await asyncio.sleep(0)
    assert len(children.alive) == 4
    children.want(50)  # no more than ``most``
    await asyncio.sleep(0)
    assert len(children.alive) == 5 and len(started) == 5
    children.want(0)  # fewer wanted: nothing is stopped, nothing new started
    await asyncio.sleep(0)
    assert len(children.alive) == 5 and children.target == 2

    child = next(iter(children.alive))
    children.receive(child, {"op": "ready"})
    one = job()
    children.take(one)
    jobs.running[one.id] = one
    children.receive(child, {"op": "done", "id": "r1", "ok": True})
    assert child.job is None and child not in children.idle  # it exits; never reused
    assert reporter.finals == [("r1", {"type": "COMPLETED"}, None)]


async def test_a_sandbox_whose_limits_cannot_be_applied_never_runs_the_code() -> None:
    api = Api()
    proposals = Proposals(cast(_api.Api, api))
    reporter = Reporter(cast(_api.Api, api), proposals, set_based=False)
    jobs = Jobs(FastLaneSettings(name="w1", single_use=True), cast(_api.Api, api), reporter)
    sent: list[JSON] = []

    class Unlimitable(FakeChild):
        def limit(self, limits: Any) -> dict[str, int]:
            raise OSError(16, "Device or resource busy")

        async def send(self, message: JSON) -> None:
            sent.append(message)

    one = job(memory_mb=64)
    child = Unlimitable()
    one.child = cast(Child, child)
    await jobs.run(one)
    assert child.killed and sent == []  # its reader then ends the job Crashed
    assert any("Could not apply its limits" in e["message"] for e in reporter.logs)
    assert one.limits is not None and one.limits.memory_mb == 64
