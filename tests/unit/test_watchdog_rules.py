"""The watchdog's rules: which silent jobs it crashes, when a Pending job counts as stuck, how
crashes are retried, when a job is over its SLA."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any, cast

import pytest
from pydantic import ValidationError

from taskscheduler import policy
from taskscheduler._prefect.runbook import RunFacts
from taskscheduler.reliability import ReliabilitySettings
from taskscheduler.services.watchdog import (
    INFRA_RETRIES,
    Watchdog,
    crash_retries,
    crash_retry_delay,
    over_sla,
    stuck_pending,
    write_atomically,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TEN_MINUTES = dt.timedelta(minutes=10)


def run_in(
    state_type: str,
    since: dt.timedelta,
    *,
    run_count: int = 1,
    started: dt.timedelta | None = None,
    **job: object,
) -> RunFacts:
    return RunFacts(
        id=uuid.uuid4(),
        name="job",
        flow_id=uuid.uuid4(),
        deployment_id=uuid.uuid4(),
        state_type=state_type,
        state_since=NOW - since,
        run_count=run_count,
        start_time=NOW - started if started is not None else None,
        tags=(),
        job=policy.JobParameters.model_validate({"task": "t", **job}),
    )


def test_pending_longer_than_the_timeout_is_stuck() -> None:
    assert stuck_pending(run_in("PENDING", dt.timedelta(minutes=11)), NOW, TEN_MINUTES)


def test_pending_for_less_is_a_worker_still_starting_it() -> None:
    assert not stuck_pending(run_in("PENDING", dt.timedelta(minutes=9)), NOW, TEN_MINUTES)


def test_only_pending_runs_count_however_old_their_state() -> None:
    for state_type in ("SCHEDULED", "RUNNING", "CRASHED"):
        assert not stuck_pending(run_in(state_type, dt.timedelta(hours=5)), NOW, TEN_MINUTES)


def test_the_timeout_is_ten_minutes_by_default_and_can_be_switched_off() -> None:
    assert ReliabilitySettings().pending_timeout == TEN_MINUTES
    assert not ReliabilitySettings(pending_timeout=0).pending_timeout  # type: ignore[arg-type]


def test_a_crash_before_the_code_started_is_always_retried_at_once() -> None:
    never_started = run_in("CRASHED", dt.timedelta(0), run_count=0, retries=0)
    assert crash_retries(never_started) == INFRA_RETRIES
    assert crash_retry_delay(never_started, 2) == 0.0


def test_a_crash_of_running_code_is_retried_by_the_tasks_own_policy() -> None:
    crashed = run_in("CRASHED", dt.timedelta(0), retries=2, retry_delay=10)
    assert crash_retries(crashed) == 2
    assert [crash_retry_delay(crashed, n) for n in (1, 2)] == [10.0, 20.0]
    assert crash_retries(run_in("CRASHED", dt.timedelta(0))) == 0


def test_a_job_is_over_its_sla_only_past_its_tasks_max_runtime() -> None:
    assert (
        over_sla(run_in("RUNNING", dt.timedelta(0), started=dt.timedelta(seconds=30)), NOW) is None
    )
    within = run_in("RUNNING", dt.timedelta(0), started=dt.timedelta(seconds=30), max_runtime=60)
    assert over_sla(within, NOW) is None
    over = run_in("RUNNING", dt.timedelta(0), started=dt.timedelta(seconds=90), max_runtime=60)
    assert over_sla(over, NOW) == "running for 90s, over the task's max_runtime of 60s"


class SilentJobs:
    """A session of the runbook that knows two silent jobs, and refuses to crash one."""

    def __init__(self) -> None:
        self.asked: list[dt.datetime] = []
        self.crashed: list[tuple[uuid.UUID, str]] = []
        self.ids = [uuid.uuid4(), uuid.uuid4()]

    async def silent_since(self, since: dt.datetime) -> list[uuid.UUID]:
        self.asked.append(since)
        return self.ids

    async def crash(self, run_id: uuid.UUID, message: str) -> bool:
        self.crashed.append((run_id, message))
        return run_id == self.ids[0]  # the other ended meanwhile: Prefect refused


def test_jobs_silent_for_zombie_after_are_crashed_and_only_accepted_crashes_count() -> None:
    watchdog = Watchdog("http://unused", ReliabilitySettings(zombie_after="45s"))  # type: ignore[arg-type]
    session = SilentJobs()
    before = dt.datetime.now(dt.UTC)
    assert asyncio.run(watchdog.crash_silent(cast(Any, session))) == 1
    [since] = session.asked
    assert (
        before - dt.timedelta(seconds=45)
        <= since
        <= dt.datetime.now(dt.UTC) - dt.timedelta(seconds=45)
    )
    assert [run_id for run_id, _ in session.crashed] == session.ids
    assert session.crashed[0][1] == "No heartbeat for 45s: the job's process died (the watchdog)"
    assert watchdog.silenced == 1


def test_zombie_after_must_outlast_a_heartbeat_and_its_persisting() -> None:
    assert ReliabilitySettings(heartbeat_seconds=30, zombie_after="40s").zombie_after  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least heartbeat_seconds"):
        ReliabilitySettings(heartbeat_seconds=30, zombie_after="35s")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least heartbeat_seconds"):
        ReliabilitySettings(heartbeat_seconds=120)  # the default 90 s would crash live jobs


def test_the_ready_file_is_replaced_whole(tmp_path: Any) -> None:
    ready = tmp_path / "watchdog.ready"
    write_atomically(ready, "first")
    write_atomically(ready, "second")
    assert ready.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["watchdog.ready"]
