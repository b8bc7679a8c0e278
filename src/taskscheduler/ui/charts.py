"""Charts as inline SVG, drawn on the server: pure functions from numbers to markup.

The page's Content-Security-Policy allows no inline script or style, so a chart is markup
with classes (``app.css`` colours them) and no ``style=``. Every text is escaped. Each chart
is an ``<svg role="img">`` named by its ``<title>`` and described by a ``<desc>`` that says in
words what it shows; each mark carries its value in ``data-value`` (and a ``<title>`` a
pointer shows), so a test can check the drawing against the figures it was drawn from.

Percentiles interpolate between ranks, as PostgreSQL's ``percentile_cont`` does, so the task
page's figures and the platform page's (computed in SQL) mean the same thing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 30, 46
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclasses.dataclass(frozen=True)
class JobPoint:
    """One started job: when it was due, how late it started, how long it ran."""

    name: str
    scheduled: dt.datetime | None
    delay: float
    duration: float | None
    state: str
    failed: bool


@dataclasses.dataclass(frozen=True)
class Summary:
    """The figures a chart's text states."""

    jobs: int
    median_delay: float | None
    p99_delay: float | None
    failed: int

    @property
    def text(self) -> str:
        if not self.jobs:
            return "no started jobs yet"
        return (
            f"last {self.jobs} jobs: median delay {seconds_text(self.median_delay)}, "
            f"p99 {seconds_text(self.p99_delay)}, {self.failed} failed"
        )


@dataclasses.dataclass(frozen=True)
class Series:
    """A named line of a line chart; ``None`` where there is no value."""

    name: str
    css: str
    values: Sequence[float | None]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1), linear between ranks (PostgreSQL's ``percentile_cont``)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def seconds_text(value: float | None) -> str:
    """Seconds, to a precision a person reads: 0.042 s, 3.14 s, 42.5 s, 1234 s."""
    if value is None:
        return "—"
    if abs(value) < 1:
        return f"{value:.3f} s"
    if abs(value) < 10:
        return f"{value:.2f} s"
    if abs(value) < 100:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


def summarise(points: Sequence[JobPoint]) -> Summary:
    """Median and p99 start delay and failures of the jobs a chart shows."""
    delays = [p.delay for p in points]
    return Summary(
        jobs=len(points),
        median_delay=percentile(delays, 0.5),
        p99_delay=percentile(delays, 0.99),
        failed=sum(1 for p in points if p.failed),
    )


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop ends at 10


@dataclasses.dataclass(frozen=True)
class Frame:
    """The plot area: ``count`` slots along x, values ``low``..``high`` along y."""

    count: int
    low: float
    high: float

    @classmethod
    def of(cls, count: int, values: Sequence[float]) -> Frame:
        low = min(0.0, *values) if values else 0.0
        return cls(count, -nice_ceiling(-low) if low < 0 else 0.0, nice_ceiling(max(values or [0])))

    def x(self, index: int) -> float:
        """The centre of slot ``index``."""
        return LEFT + (index + 0.5) * PLOT_W / max(self.count, 1)

    def y(self, value: float) -> float:
        return TOP + PLOT_H - (value - self.low) / (self.high - self.low) * PLOT_H


def _f(value: float) -> str:
    return f"{value:.1f}"


def _open(chart_id: str, title: str, description: str, css: str) -> list[str]:
    return [
        f'<svg class="chart {escape(css)}" id="{escape(chart_id)}" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-labelledby="{escape(chart_id)}-title '
        f'{escape(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]


def _axes(frame: Frame, y_label: str, x_label: str, x_ticks: Sequence[tuple[int, str]]) -> str:
    """Both axes, y ticks at the bottom, middle and top of the range, and the labels."""
    parts = [
        f'<g class="axes"><line class="axis" x1="{LEFT}" y1="{TOP + PLOT_H}" '
        f'x2="{LEFT + PLOT_W}" y2="{TOP + PLOT_H}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}"/>'
    ]
    ticks = sorted({frame.low, 0.0, (frame.low + frame.high) / 2, frame.high})
    for tick in ticks:
        y = _f(frame.y(tick))
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_W}" y2="{y}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(f"{tick:g}")}</text>'
        )
    for index, label in x_ticks:
        parts.append(
            f'<text class="tick" x="{_f(frame.x(index))}" y="{TOP + PLOT_H + 16}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{LEFT + PLOT_W / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" transform="translate(14 {TOP + PLOT_H / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text></g>'
    )
    return "".join(parts)


def _legend(entries: Sequence[tuple[str, str]]) -> str:
    """A row of swatches above the plot, right-aligned: (css class, text)."""
    parts = ['<g class="legend">']
    x = WIDTH - RIGHT
    for css, label in reversed(entries):
        x -= 26 + 7 * len(label)
        parts.append(
            f'<rect class="swatch {escape(css)}" x="{x}" y="8" width="10" height="10"/>'
            f'<text x="{x + 14}" y="17">{escape(label)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _markup(parts: Sequence[str]) -> Markup:
    """The chart as markup Jinja keeps as is: every text in ``parts`` went through
    ``escape`` and every number through a format, so nothing in them is a caller's markup."""
    return Markup("".join(parts))  # noqa: S704 - built from escaped texts and numbers only


def _empty(message: str) -> Markup:
    return _markup([f'<p class="empty chart-empty">{escape(message)}</p>'])


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%H:%M") if moment else "?"


def job_chart(points: Sequence[JobPoint], chart_id: str = "job-chart") -> Markup:
    """Start delay (circles) and duration (squares) of each job, oldest first; a failed
    job's delay is a red cross instead of a circle and its duration square is red."""
    if not points:
        return _empty("No started jobs yet: nothing to draw.")
    summary = summarise(points)
    values = [p.delay for p in points] + [p.duration for p in points if p.duration is not None]
    frame = Frame.of(len(points), values)
    first, last = points[0].scheduled, points[-1].scheduled
    span = f" scheduled {_when(first)} to {_when(last)} UTC" if first and last else ""
    parts = _open(
        chart_id,
        f"Start delay and duration of the {summary.text}",
        f"{len(points)} jobs, oldest first{span}; start delay and duration in seconds; "
        f"{summary.failed} failed or crashed.",
        "job-chart",
    )
    parts.append(
        _axes(
            frame,
            "seconds",
            "jobs, oldest → newest (scheduled time, UTC)",
            [(0, _when(first)), (len(points) - 1, _when(last))]
            if len(points) > 1
            else [(0, _when(first))],
        )
    )
    delays = " ".join(f"{_f(frame.x(i))},{_f(frame.y(p.delay))}" for i, p in enumerate(points))
    parts.append(f'<polyline class="series delay" points="{delays}"/>')
    for i, p in enumerate(points):
        x, y = frame.x(i), frame.y(p.delay)
        css = "job failed" if p.failed else "job"
        tip = (
            f"{p.name} ({p.state}), scheduled {_when(p.scheduled)} UTC: "
            f"delay {seconds_text(p.delay)}, duration {seconds_text(p.duration)}"
        )
        parts.append(f'<g class="{css}" data-job="{escape(p.name)}"><title>{escape(tip)}</title>')
        if p.duration is not None:
            d = frame.y(p.duration)
            parts.append(
                f'<rect class="mark duration" x="{_f(x - 3)}" y="{_f(d - 3)}" width="6" '
                f'height="6" data-value="{p.duration:.6g}"/>'
            )
        if p.failed:
            parts.append(
                f'<path class="mark delay fail-mark" d="M{_f(x - 4)},{_f(y - 4)}l8,8'
                f'm0,-8l-8,8" data-value="{p.delay:.6g}" data-x="{_f(x)}" data-y="{_f(y)}"/>'
            )
        else:
            parts.append(
                f'<circle class="mark delay" cx="{_f(x)}" cy="{_f(y)}" r="3.5" '
                f'data-value="{p.delay:.6g}"/>'
            )
        parts.append("</g>")
    legend = [("delay", "start delay"), ("duration", "duration"), ("failed", "failed")]
    parts.append(_legend(legend))
    parts.append("</svg>")
    return _markup(parts)


def bar_chart(
    values: Sequence[float],
    *,
    chart_id: str,
    title: str,
    description: str,
    y_label: str,
    x_label: str,
    x_ticks: Sequence[tuple[int, str]] = (),
    empty: str = "Nothing to draw.",
) -> Markup:
    """One bar a slot (e.g. a minute), from zero to its value."""
    if not any(values):
        return _empty(empty)
    frame = Frame.of(len(values), values)
    width = max(PLOT_W / len(values) - 2, 1)
    parts = _open(chart_id, title, description, "bar-chart")
    parts.append(_axes(frame, y_label, x_label, x_ticks))
    for i, value in enumerate(values):
        top, base = frame.y(max(value, 0)), frame.y(min(value, 0))
        parts.append(
            f'<rect class="mark bar" x="{_f(frame.x(i) - width / 2)}" y="{_f(top)}" '
            f'width="{_f(width)}" height="{_f(base - top)}" data-value="{value:g}">'
            f"<title>{escape(f'{value:g}')}</title></rect>"
        )
    parts.append("</svg>")
    return _markup(parts)


def line_chart(
    series: Sequence[Series],
    *,
    chart_id: str,
    title: str,
    description: str,
    y_label: str,
    x_label: str,
    x_ticks: Sequence[tuple[int, str]] = (),
    empty: str = "Nothing to draw.",
) -> Markup:
    """A line a series, broken where a slot has no value, with a dot on each value."""
    known = [v for s in series for v in s.values if v is not None]
    if not known:
        return _empty(empty)
    frame = Frame.of(max(len(s.values) for s in series), known)
    parts = _open(chart_id, title, description, "line-chart")
    parts.append(_axes(frame, y_label, x_label, x_ticks))
    for s in series:
        runs: list[list[str]] = [[]]
        dots = []
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x, y = _f(frame.x(i)), _f(frame.y(value))
            runs[-1].append(f"{x},{y}")
            dots.append(
                f'<circle class="mark {escape(s.css)}" cx="{x}" cy="{y}" r="2.5" '
                f'data-value="{value:.6g}"><title>{escape(s.name)}: '
                f"{escape(seconds_text(value))}</title></circle>"
            )
        parts.append(f'<g class="series-group {escape(s.css)}">')
        parts.extend(
            f'<polyline class="series {escape(s.css)}" points="{" ".join(run)}"/>'
            for run in runs
            if len(run) > 1
        )
        parts.extend(dots)
        parts.append("</g>")
    parts.append(_legend([(s.css, s.name) for s in series]))
    parts.append("</svg>")
    return _markup(parts)
