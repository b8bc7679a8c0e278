"""From the figures of ``services.history`` to what the task and platform pages show: charts
(``charts``) and the few numbers beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskscheduler.services import history
from taskscheduler.ui import charts


def job_points(timings: Sequence[history.JobTiming]) -> list[charts.JobPoint]:
    return [
        charts.JobPoint(
            name=t.name,
            scheduled=t.scheduled,
            delay=t.delay,
            duration=t.duration,
            state=t.state,
            failed=t.failed,
        )
        for t in timings
    ]


def task_context(timings: Sequence[history.JobTiming]) -> dict[str, Any]:
    """The task page's chart and its summary."""
    points = job_points(timings)
    return {"chart": charts.job_chart(points), "chart_summary": charts.summarise(points)}


def _minute_ticks(minutes: Sequence[history.Minute]) -> list[tuple[int, str]]:
    if not minutes:
        return []
    picks = range(0, len(minutes), 15) if len(minutes) > 15 else [0]
    ticks = [(i, minutes[i].start.strftime("%H:%M")) for i in picks]
    return [*ticks, (len(minutes) - 1, minutes[-1].start.strftime("%H:%M"))]


def platform_context(figures: history.PlatformFigures) -> dict[str, Any]:
    """The platform page's charts and figures."""
    minutes = figures.minutes
    ticks = _minute_ticks(minutes)
    started = [m.started for m in minutes]
    total = sum(started)
    x_label = "minute started (UTC)"
    started_chart = charts.bar_chart(
        [float(n) for n in started],
        chart_id="started-chart",
        title=f"Jobs started per minute over the last hour: {total} in all",
        description=f"{total} jobs started in the last {len(minutes)} minutes; "
        f"at most {max(started, default=0)} in one minute.",
        y_label="jobs started",
        x_label=x_label,
        x_ticks=ticks,
        empty="No job started in the last hour.",
    )
    worst = max((m.p99 for m in minutes if m.p99 is not None), default=None)
    delay_chart = charts.line_chart(
        [
            charts.Series("p50", "p50", [m.p50 for m in minutes]),
            charts.Series("p99", "p99", [m.p99 for m in minutes]),
        ],
        chart_id="delay-chart",
        title="Start delay per minute over the last hour, p50 and p99",
        description="Median and 99th percentile start delay of the jobs started each minute; "
        f"worst p99 {charts.seconds_text(worst)}.",
        y_label="seconds",
        x_label=x_label,
        x_ticks=ticks,
        empty="No job started in the last hour: no delays to draw.",
    )
    return {
        "figures": figures,
        "snapshot": figures.snapshot,
        "started_total": total,
        "started_chart": started_chart,
        "delay_chart": delay_chart,
        "worst_p99": worst,
    }
