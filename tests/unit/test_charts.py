"""The web page's charts: marks where their values put them, failures marked, the summary's
figures right, every text escaped, and an empty state when there is nothing to draw."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from taskscheduler import models
from taskscheduler.services import history, monitoring
from taskscheduler.ui import charts, figures
from taskscheduler.ui.pages import templates

SVG = "{http://www.w3.org/2000/svg}"
T0 = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def point(
    i: int, delay: float, duration: float | None = 1.0, failed: bool = False
) -> charts.JobPoint:
    return charts.JobPoint(
        name=f"job-{i}",
        scheduled=T0 + dt.timedelta(minutes=i),
        delay=delay,
        duration=duration,
        state="Failed" if failed else "Completed",
        failed=failed,
    )


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def marks(svg: ET.Element, css: str) -> list[ET.Element]:
    return [e for e in svg.iter() if css in (e.get("class") or "").split()]


def test_percentiles_interpolate_between_ranks_like_percentile_cont() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert charts.percentile(values, 0.5) == pytest.approx(50.5)
    assert charts.percentile(values, 0.99) == pytest.approx(99.01)
    assert charts.percentile([3.0], 0.99) == 3.0
    assert charts.percentile([], 0.5) is None
    assert charts.percentile([4.0, 1.0, 2.0], 0.5) == 2.0  # unsorted input


def test_the_summary_states_median_p99_and_failures_of_a_known_input() -> None:
    delays = [0.5, 1.0, 2.0, 4.0, 100.0]
    points = [point(i, d, failed=i in (1, 3)) for i, d in enumerate(delays)]
    summary = charts.summarise(points)
    assert (summary.jobs, summary.median_delay, summary.failed) == (5, 2.0, 2)
    assert summary.p99_delay == pytest.approx(4.0 + 0.96 * 96.0)  # rank 3.96 of 0..4
    assert summary.text == "last 5 jobs: median delay 2.00 s, p99 96.2 s, 2 failed"
    assert charts.summarise([]).text == "no started jobs yet"


def test_job_marks_sit_where_their_values_and_order_put_them() -> None:
    points = [point(0, 0.0, 2.0), point(1, 5.0, 10.0), point(2, 2.5, None)]
    svg = parse(charts.job_chart(points))
    frame = charts.Frame.of(3, [0.0, 5.0, 2.5, 2.0, 10.0])
    assert (frame.low, frame.high) == (0.0, 10.0)
    delays = marks(svg, "delay")
    circles = [e for e in delays if e.tag == f"{SVG}circle"]
    assert [float(c.get("data-value") or "nan") for c in circles] == [0.0, 5.0, 2.5]
    bottom, top = charts.TOP + charts.PLOT_H, charts.TOP
    ys = [float(c.get("cy") or "nan") for c in circles]
    assert ys[0] == pytest.approx(bottom, abs=0.1)  # 0 s on the x axis
    assert ys[1] == pytest.approx((bottom + top) / 2, abs=0.1)  # 5 of 10 s: half way up
    assert ys[2] == pytest.approx(bottom - charts.PLOT_H / 4, abs=0.1)
    xs = [float(c.get("cx") or "nan") for c in circles]
    step = charts.PLOT_W / 3
    assert xs == pytest.approx([charts.LEFT + step * (i + 0.5) for i in range(3)], abs=0.1)
    squares = marks(svg, "duration")
    squares = [s for s in squares if s.tag == f"{SVG}rect" and "swatch" not in s.get("class", "")]
    assert [float(s.get("data-value") or "nan") for s in squares] == [2.0, 10.0]  # one running
    top_square = float(squares[1].get("y") or "nan") + 3  # the square's centre
    assert top_square == pytest.approx(top, abs=0.1)  # 10 s: the top of the scale


def test_failed_jobs_are_marked_with_a_cross_instead_of_a_dot() -> None:
    points = [point(i, float(i), failed=i in (1, 4)) for i in range(6)]
    svg = parse(charts.job_chart(points))
    jobs = [g for g in svg.iter(f"{SVG}g") if "job" in (g.get("class") or "").split()]
    assert len(jobs) == 6
    failed = [g.get("data-job") for g in jobs if "failed" in (g.get("class") or "").split()]
    assert failed == ["job-1", "job-4"]
    crosses = marks(svg, "fail-mark")
    assert [c.get("data-value") for c in crosses] == ["1", "4"]
    assert len([e for e in marks(svg, "delay") if e.tag == f"{SVG}circle"]) == 4
    title = svg.find(f"{SVG}title")
    assert title is not None and "2 failed" in (title.text or "")
    assert svg.get("role") == "img"


def test_every_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    points = [
        charts.JobPoint(evil, T0, 1.0, 1.0, "<b>Failed</b>", True),
        point(1, 2.0),
    ]
    markup = str(charts.job_chart(points, chart_id='x" onload="y'))
    assert "<script>" not in markup and "<b>" not in markup
    assert 'onload="y' not in markup
    svg = parse(markup)  # still well-formed XML
    assert any(g.get("data-job") == evil for g in svg.iter(f"{SVG}g"))
    bars = str(
        charts.bar_chart(
            [1.0], chart_id="b", title=evil, description=evil, y_label=evil, x_label=evil
        )
    )
    assert "<script>" not in bars
    assert parse(bars).find(f"{SVG}title").text == evil  # type: ignore[union-attr]
    lines = str(
        charts.line_chart(
            [charts.Series(evil, "p50", [1.0, None, 2.0])],
            chart_id="l",
            title="t",
            description="d",
            y_label="s",
            x_label="m",
        )
    )
    assert "<script>" not in lines
    parse(lines)


def test_nothing_to_draw_gives_the_empty_state() -> None:
    for markup in (
        charts.job_chart([]),
        charts.bar_chart(
            [0.0, 0.0],
            chart_id="b",
            title="t",
            description="d",
            y_label="y",
            x_label="x",
            empty="No job started.",
        ),
        charts.line_chart(
            [charts.Series("p50", "p50", [None, None])],
            chart_id="l",
            title="t",
            description="d",
            y_label="y",
            x_label="x",
        ),
    ):
        assert "<svg" not in markup
        assert 'class="empty chart-empty"' in markup


def test_bars_rise_to_their_values_and_lines_break_where_no_value() -> None:
    svg = parse(
        charts.bar_chart(
            [0.0, 4.0, 2.0], chart_id="b", title="t", description="d", y_label="y", x_label="x"
        )
    )
    bars = marks(svg, "bar")
    heights = [float(b.get("height") or "nan") for b in bars]
    # The scale tops at 5 (the next round number above 4): 4 is four fifths of the height.
    assert heights == pytest.approx([0.0, charts.PLOT_H * 0.8, charts.PLOT_H * 0.4], abs=0.1)
    svg = parse(
        charts.line_chart(
            [charts.Series("p99", "p99", [1.0, 2.0, None, 3.0, 4.0])],
            chart_id="l",
            title="t",
            description="d",
            y_label="y",
            x_label="x",
        )
    )
    polylines = [e for e in svg.iter(f"{SVG}polyline")]
    assert [len((p.get("points") or "").split()) for p in polylines] == [2, 2]
    dots = [e for e in marks(svg, "mark") if e.tag == f"{SVG}circle"]
    assert [d.get("data-value") for d in dots] == ["1", "2", "3", "4"]


def test_minutes_are_filled_with_zeros_for_the_whole_hour() -> None:
    now = T0 + dt.timedelta(minutes=59, seconds=30)
    rows: list[dict[str, object]] = [
        {
            "minute": (T0 + dt.timedelta(minutes=59)).timestamp(),
            "started": 3,
            "p50": 0.5,
            "p99": 2.0,
        },
        {"minute": T0.timestamp(), "started": 1, "p50": 0.1, "p99": 0.1},
    ]
    minutes = history.fill_minutes(rows, now)
    assert len(minutes) == 60
    assert (minutes[0].start, minutes[0].started) == (T0, 1)
    assert (minutes[-1].started, minutes[-1].p99) == (3, 2.0)
    assert sum(m.started for m in minutes) == 4
    assert all(m.p50 is None for m in minutes[1:-1])


def test_the_platform_page_renders_its_figures() -> None:
    minutes = history.fill_minutes(
        [{"minute": T0.timestamp(), "started": 2, "p50": 0.2, "p99": 0.9}], T0
    )
    snapshot = monitoring.Snapshot(taken=T0, server_ok=True, database_ok=True)
    snapshot.pools = [
        monitoring.PoolHealth(
            name="process",
            type="process",
            status="READY",
            paused=False,
            workers=[
                monitoring.WorkerHealth(
                    name="w<1>", status="ONLINE", last_heartbeat=T0, heartbeat_age=3.0
                )
            ],
        )
    ]
    found = history.PlatformFigures(
        taken=T0,
        minutes=minutes,
        late_hour=1,
        late_day=2,
        failed_hour=3,
        failed_day=4,
        snapshot=snapshot,
    )
    html = templates.env.get_template("platform.html").render(
        who=None, **figures.platform_context(found)
    )
    assert 'id="started-chart"' in html and 'id="delay-chart"' in html
    assert 'data-worker="w&lt;1&gt;"' in html and 'data-status="online"' in html
    assert '<td id="failed-day">4</td>' in html and '<td id="late-hour">1</td>' in html
    assert "style=" not in html and "<script>" not in html.replace(
        '<script src="/ui/static/app.js"></script>', ""
    )


def test_the_task_page_renders_its_chart_and_summary() -> None:
    timings = [
        history.JobTiming(
            id="1", name="a", state="Completed", scheduled=T0, delay=0.5, duration=1.0, failed=False
        ),
        history.JobTiming(
            id="2", name="b", state="Crashed", scheduled=T0, delay=1.5, duration=None, failed=True
        ),
    ]
    context = figures.task_context(timings)
    assert context["chart_summary"].text == "last 2 jobs: median delay 1.00 s, p99 1.49 s, 1 failed"
    svg = parse(context["chart"])
    assert len(marks(svg, "fail-mark")) == 1
    assert models.JobState  # the page's models load alongside
