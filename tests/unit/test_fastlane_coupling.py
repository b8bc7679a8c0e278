"""The Prefect behaviour the fast lane relies on, checked against the installed Prefect.

The fast lane keeps every job a flow run and claims it through the public API, so it depends on
no table; it does depend on these orchestration rules and limits. If an upgrade changes one,
this fails before any job runs twice.
"""

from __future__ import annotations

import datetime as dt

import prefect
from prefect.server.api import flow_runs, workers
from prefect.server.orchestration import core_policy
from prefect.server.schemas.states import StateType

from taskscheduler._prefect import rest as _api
from taskscheduler.fastlane.settings import BULK_LIMIT, FastLaneSettings


def test_prefect_is_the_version_the_fast_lane_was_built_against() -> None:
    assert prefect.__version__ == "3.9.1"


def test_a_second_claim_of_a_run_is_aborted_by_the_core_flow_policy() -> None:
    rules = core_policy.CoreFlowPolicy.priority()
    assert core_policy.PreventPendingTransitions in rules
    blocked = core_policy.PreventPendingTransitions.FROM_STATES
    assert {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.CANCELLED} <= set(
        blocked
    )
    # A lost answer is retried with the same transition id and recognised, not re-applied.
    assert rules.index(core_policy.PreventDuplicateTransitions) < rules.index(
        core_policy.PreventPendingTransitions
    )


def test_running_is_refused_before_the_scheduled_time() -> None:
    assert core_policy.WaitForScheduledTime in core_policy.CoreFlowPolicy.priority()
    assert StateType.PENDING in core_policy.WaitForScheduledTime.FROM_STATES


def test_bulk_limits_match_the_fast_lanes_batches() -> None:
    assert flow_runs.BULK_OPERATION_LIMIT == BULK_LIMIT
    assert "get_scheduled_flow_runs" in {getattr(r, "name", "") for r in workers.router.routes}
    assert FastLaneSettings().claim_limit <= 200  # PREFECT_API_DEFAULT_LIMIT


def test_timestamps_round_trip_and_batches_are_bounded() -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC).timestamp()
    assert _api.epoch(_api.iso(now)) == now
    assert _api.epoch("2026-01-02T03:04:05.678000Z") == now
    parts = _api.chunks([str(i) for i in range(120)])
    assert [len(p) for p in parts] == [50, 50, 20]


def test_settings_read_their_environment(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("TASKS_FAST_PROCESSES", "7")
    monkeypatch.setenv("TASKS_FAST_LOOKAHEAD", "2.5")
    settings = FastLaneSettings()
    assert settings.processes == 7 and settings.lookahead == 2.5
    assert all(f.description for f in FastLaneSettings.model_fields.values())
