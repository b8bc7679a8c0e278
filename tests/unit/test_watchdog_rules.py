"""The watchdog's pure rules: when a Pending job counts as stuck."""

from __future__ import annotations

import datetime as dt
import uuid

from prefect.client.schemas.objects import FlowRun, State, StateType

from taskscheduler.reliability import ReliabilitySettings
from taskscheduler.watchdog import stuck_pending

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TEN_MINUTES = dt.timedelta(minutes=10)


def run_in(state_type: StateType, since: dt.timedelta) -> FlowRun:
    return FlowRun(
        id=uuid.uuid4(),
        flow_id=uuid.uuid4(),
        state=State(type=state_type, timestamp=NOW - since),
    )


def test_pending_longer_than_the_timeout_is_stuck() -> None:
    assert stuck_pending(run_in(StateType.PENDING, dt.timedelta(minutes=11)), NOW, TEN_MINUTES)


def test_pending_for_less_is_a_worker_still_starting_it() -> None:
    assert not stuck_pending(run_in(StateType.PENDING, dt.timedelta(minutes=9)), NOW, TEN_MINUTES)


def test_only_pending_runs_count_however_old_their_state() -> None:
    for state_type in (StateType.SCHEDULED, StateType.RUNNING, StateType.CRASHED):
        assert not stuck_pending(run_in(state_type, dt.timedelta(hours=5)), NOW, TEN_MINUTES)


def test_the_timeout_is_ten_minutes_by_default_and_can_be_switched_off() -> None:
    assert ReliabilitySettings().pending_timeout == TEN_MINUTES
    assert not ReliabilitySettings(pending_timeout=0).pending_timeout  # type: ignore[arg-type]
