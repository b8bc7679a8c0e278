"""The benchmark's own arithmetic: what it counts as lost, twice and late, and its schedules.

The benchmark asserts nothing about the platform; these tests make sure that what it reports
is computed the way docs/performance.md says.
"""

from __future__ import annotations

import datetime as dt
import runpy
from pathlib import Path
from typing import Any

import dateutil.rrule
import pytest

from bench import __main__ as bench
from bench import _drive
from taskscheduler import models

T0 = 1_800_000_000.0


def row(state: str, due: float, start: float | None, run_count: int = 1, running: int = 1) -> tuple:
    return ("id", state, T0 + due, None if start is None else T0 + start, None, run_count, running)


def test_percentiles_are_nearest_rank_and_empty_is_none() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _drive.percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert _drive.percentiles([0.2]) == {"p50": 0.2, "p90": 0.2, "p99": 0.2, "max": 0.2}
    assert _drive.percentiles([]) == {"p50": None, "p90": None, "p99": None, "max": None}


def test_a_run_not_yet_ended_is_not_lost_and_one_that_ended_badly_is() -> None:
    result = _drive.summarise(
        [
            row("COMPLETED", 0, 0.1),
            row("COMPLETED", 1, 1.3),
            row("FAILED", 2, 2.2),
            row("CRASHED", 3, None, running=0),
            row("SCHEDULED", 4, None, running=0),
            row("PENDING", 5, None, running=0),
            row("RUNNING", 6, 6.5),
        ],
        since=T0,
    )
    assert result["jobs"] == 7
    assert result["completed"] == 2
    assert result["lost"] == 2  # failed and crashed
    assert result["not_ended"] == 3
    assert result["run_twice"] == 0
    assert result["delays"] == pytest.approx([0.1, 0.2, 0.3, 0.5])
    assert result["starts"] == pytest.approx([0.1, 1.3, 2.2, 6.5])
    # 4 starts over 6.4 s: 3 intervals.
    assert result["rate_per_min"] == pytest.approx(3 / 6.4 * 60)


def test_a_second_running_state_or_attempt_counts_as_run_twice() -> None:
    result = _drive.summarise(
        [
            row("COMPLETED", 0, 0.1, running=2),
            row("COMPLETED", 0, 0.1, run_count=2),
            row("COMPLETED", 0, 0.1),
        ],
        since=T0,
    )
    assert result["run_twice"] == 2


def test_one_start_has_no_rate() -> None:
    assert _drive.summarise([row("COMPLETED", 0, 0.1)], since=T0)["rate_per_min"] is None


def _ticks(spec: dict[str, str], now: dt.datetime) -> list[dt.datetime]:
    """The first three ticks of a task with these schedule fields, as the platform plans them."""
    task = models.TaskSpec.model_validate(
        {"name": "bench-unit", "code": "def main():\n    pass\n", **spec}
    )
    plan = task.schedule_plan(now)
    assert plan is not None and plan.timezone == "UTC"
    rule = dateutil.rrule.rrulestr(plan.rrule)
    return [rule[i] for i in range(3)]  # type: ignore[index]


def test_recurring_tasks_never_fire_before_their_first_tick() -> None:
    first = dt.datetime(2026, 11, 27, 18, 0, 0, 500_000, tzinfo=dt.UTC)
    together = [_drive.tick_spec(n, 4, 600, first, spread=False) for n in range(4)]
    assert all(s == together[0] for s in together)
    assert _ticks(together[0], first - dt.timedelta(minutes=5)) == [
        dt.datetime(2026, 11, 27, 18, 0, 1) + dt.timedelta(minutes=10 * i) for i in range(3)
    ]


def test_spread_recurring_tasks_share_the_interval_evenly() -> None:
    first = dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.UTC)
    starts = [_ticks(_drive.tick_spec(n, 4, 600, first, spread=True), first)[0] for n in range(4)]
    assert [(s - starts[0]).total_seconds() for s in starts] == [0, 150, 300, 450]


def test_the_job_records_each_execution(tmp_path: Path) -> None:
    hits = tmp_path / "hits"
    source = tmp_path / "job.py"
    source.write_text(_drive.job_code(str(hits)))
    main = runpy.run_path(str(source))["main"]
    main(i=3)
    main(i=3)
    assert hits.read_text() == "3\n3\n"


def test_the_table_and_ratios_show_each_scenario() -> None:
    def scenario(rate: float, p99: float, lost: int = 0, unended: int = 0) -> dict[str, object]:
        return {
            "jobs": 100,
            "rate_per_min": rate,
            "delay": {"p50": p99 / 2, "p90": p99, "p99": p99, "max": p99},
            "lost": lost,
            "not_ended": unended,
            "run_twice": 0,
            "cpu": {"server": {"cpu_ms_per_job": 115.0, "peak_rss_mb": 300.0}},
        }

    report = {
        "configurations": {
            "stock": {"steady": scenario(10, 10.0)},
            "tuned-2": {
                "steady-slow": scenario(600, 0.5),
                "steady": scenario(665, 300.0, unended=621),
                "api": {"runs_per_s": 20.0, "runs_per_min": 1200},
            },
            "tuned-1": {"api": {"runs_per_s": 16.0, "runs_per_min": 960}},
        }
    }
    report["ratios"] = bench.ratios(report)
    assert report["ratios"] == [
        "steady: fast lane rate 60x stock; p99 delay stock/fast 20x",
        "api: 2 processes / 1 process = 1.25x",
    ]
    lines = bench.table(report).splitlines()
    steady = next(line for line in lines if line.startswith("steady ") and "tuned-2" in line)
    assert steady.split()[3:12] == [
        "100",
        "665",
        "150,000",
        "300,000",
        "300,000",
        "300,000",
        "0",
        "621",
        "0",
    ]
    assert any(line.startswith("api") and "1,200" in line for line in lines)


def test_a_configuration_may_change_settings_of_its_own() -> None:
    assert bench.split_config("tuned-2") == ("tuned-2", {})
    assert bench.split_config("tuned-2@TASKS_FAST_CHECK_AHEAD=0@TASKS_FAST_PROCESSES=8") == (
        "tuned-2",
        {"TASKS_FAST_CHECK_AHEAD": "0", "TASKS_FAST_PROCESSES": "8"},
    )
    for wrong in ("tuned-3", "stock@TASKS_FAST_PROCESSES=8", "tuned-2@TASKS_FAST_PROCESSES"):
        with pytest.raises(SystemExit, match="bench: "):
            bench.split_config(wrong)


def test_the_table_makes_room_for_a_long_configuration_name() -> None:
    row = {
        "jobs": 10,
        "rate_per_min": 600.0,
        "delay": {"p50": 0.1, "p90": 0.2, "p99": 0.3, "max": 0.4},
        "lost": 0,
        "not_ended": 0,
        "run_twice": 0,
        "cpu": {},
    }
    names = ["tuned-2", "tuned-2@TASKS_FAST_CHECK_AHEAD=0"]
    text = bench.table({"configurations": {name: {"steady": row} for name in names}})
    head, _, *rows = text.splitlines()
    assert [line.split()[1] for line in rows] == names
    # Every column starts where its heading does, whatever the name's length.
    assert {line.index(" fast ") for line in rows} == {head.index(" lane")}


def _lane_result(pool: str, offered: float, p99: float | None, lost: int = 0) -> dict[str, Any]:
    return {
        "pool": pool,
        "offered_per_min": offered,
        "jobs": 10,
        "rate_per_min": offered,
        "delay": {"p50": 0.05, "p90": 0.1, "p99": p99, "max": p99},
        "lost": lost,
        "not_ended": 0,
        "run_twice": 0,
        "cpu": {
            "machine": {"seconds": 60.0, "cpu_s": 9.0},
            "sandbox worker": {"cpu_ms_per_job": 40.0},
        },
        "machine_net_ms_per_job": 300.0,
    }


def test_the_lane_bench_names_the_highest_rate_that_met_the_delay_target() -> None:
    from bench import lanes

    results = {
        "sandbox": _lane_result("sandbox", 120, 0.3),
        "sandbox@240": _lane_result("sandbox", 240, 0.6),
        "sandbox@480": _lane_result("sandbox", 480, 0.9, lost=1),  # lost one: not met
        "sandbox@960": _lane_result("sandbox", 960, 2.5),
        "process": _lane_result("process", 10, 0.2),  # another lane: never counted
        "sandbox burst": {**_lane_result("sandbox", 0, 0.5), "offered_per_min": None},
    }
    assert lanes.best_rate(results) == 240
    text = lanes.table(results)
    assert "with p99 <= 1 s (of the rates tried): 240" in text
    assert lanes.best_rate({"sandbox": _lane_result("sandbox", 120, 1.5)}) is None
    # 9 CPU-s in 60 s for 10 jobs, 0.1 CPU-s a second of it the idle platform's: 300 ms a job.
    assert lanes.net_machine_ms(results["sandbox"], 0.1) == pytest.approx(300.0)
