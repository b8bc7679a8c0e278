"""The misfire policy and late limit: which late jobs still run."""

from __future__ import annotations

import datetime as dt

import pytest

from taskscheduler import misfire, models
from taskscheduler.reliability import ReliabilitySettings

ALL, LATEST, SKIP = models.MisfirePolicy.ALL, models.MisfirePolicy.LATEST, models.MisfirePolicy.SKIP
GRACE = dt.timedelta(seconds=60)


def reason(policy: models.MisfirePolicy, late: float, newer: int = 0, *, auto: bool = True,
           limit: float | None = None, picked_up: float | None = None) -> str | None:  # fmt: skip
    """``late``: seconds late at the start; ``picked_up``: when a worker took it (default same)."""
    return misfire.skip_reason(
        policy=policy,
        late_limit=dt.timedelta(seconds=limit) if limit is not None else None,
        lateness=dt.timedelta(seconds=late),
        picked_up_late=dt.timedelta(seconds=late if picked_up is None else picked_up),
        auto_scheduled=auto,
        newer_due=newer,
        grace=GRACE,
    )


def test_all_runs_every_missed_tick() -> None:
    assert reason(ALL, 600, newer=5) is None


def test_latest_skips_overtaken_ticks_and_runs_the_newest() -> None:
    assert "misfire policy 'latest'" in (reason(LATEST, 600, newer=2) or "")
    assert reason(LATEST, 600, newer=0) is None


def test_skip_skips_overtaken_ticks_and_any_beyond_the_grace() -> None:
    assert reason(SKIP, 5, newer=1) is not None
    assert reason(SKIP, 61) is not None
    assert reason(SKIP, 59) is None


def test_a_tick_picked_up_on_time_is_no_misfire_however_slow_its_start() -> None:
    # Picked up on time, started 90 s later: no newer tick was due at pick-up, so it runs.
    assert reason(SKIP, 90, newer=0, picked_up=0.2) is None
    assert reason(LATEST, 90, newer=0, picked_up=0.2) is None
    # The late limit is about the start, so it still applies.
    assert reason(LATEST, 90, picked_up=0.2, limit=30) is not None


def test_late_limit_skips_any_job_even_one_asked_for_by_hand() -> None:
    assert "late limit of 30s" in (reason(ALL, 31, auto=False, limit=30) or "")
    assert reason(ALL, 29, auto=False, limit=30) is None


def test_misfire_policy_never_applies_to_jobs_asked_for_by_hand() -> None:
    assert reason(SKIP, 600, newer=3, auto=False) is None


@pytest.mark.parametrize(
    ("policy", "limit", "late", "expected"),
    [
        (ALL, None, 10, False),
        (LATEST, None, 0.2, False),
        (LATEST, None, 2, True),
        (ALL, 5, 2, True),
    ],
)
def test_only_late_jobs_with_a_policy_pay_for_a_check(
    policy: models.MisfirePolicy, limit: float | None, late: float, expected: bool
) -> None:
    limit_td = dt.timedelta(seconds=limit) if limit is not None else None
    assert misfire.needs_check(policy, limit_td, dt.timedelta(seconds=late)) is expected


def test_spec_takes_misfire_late_limit_sla_and_notify() -> None:
    spec = models.build_spec(
        {"name": "t", "code": "def main():\n    pass\n", "misfire": "latest", "late_limit": "30s",
         "max_runtime": "5m", "notify": ["ops", "ops"]}
    )  # fmt: skip
    assert spec.misfire is LATEST and spec.late_limit == dt.timedelta(seconds=30)
    assert spec.max_runtime == dt.timedelta(minutes=5) and spec.notify == ["ops"]
    assert models.build_spec({"name": "t", "code": "def main():\n    pass\n"}).misfire is ALL


def test_retention_is_on_by_default_and_reaches_prefect_settings() -> None:
    env = ReliabilitySettings().server_env()
    assert env["PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"] == "events,flow_runs"
    assert env["PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"] == str(14 * 86400)
    assert env["PREFECT_SERVER_EVENTS_RETENTION_PERIOD"] == f"PT{7 * 86400}S"


def test_the_concurrency_wait_reaches_prefects_own_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A contract with Prefect: the variable we set is the one its orchestration reads."""
    from prefect.settings import Settings

    env = ReliabilitySettings(concurrency_wait="7s").server_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().server.deployments.concurrency_slot_wait_seconds == 7.0
    assert ReliabilitySettings().concurrency_wait == dt.timedelta(seconds=5)
