"""The recent past in figures, for the web page's charts: a task's latest jobs (start delay,
duration, outcome) and the platform's last hour a minute at a time, with late and failed jobs
over the last hour and day. Read from Prefect's tables (``_prefect.history``), never copied;
pools and workers come from the monitoring snapshot ``tasks status`` prints.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler._prefect import history
from taskscheduler.services import monitoring
from taskscheduler.settings import Settings

FAILED_TYPES = ("FAILED", "CRASHED")
TASK_JOBS = 100
MINUTES = 60


class JobTiming(BaseModel):
    """One started job of a task."""

    id: str
    name: str
    state: str = Field(description="Prefect's state name: Completed, Failed, Crashed, ...")
    scheduled: dt.datetime | None
    delay: float = Field(description="Seconds from scheduled time to start.")
    duration: float | None = Field(description="Seconds from start to end; None while running.")
    failed: bool


class Minute(BaseModel):
    """Jobs that started in one minute, and their start delays."""

    start: dt.datetime
    started: int = 0
    p50: float | None = None
    p99: float | None = None


class PlatformFigures(BaseModel):
    """The platform page's figures, taken at one moment."""

    taken: dt.datetime
    minutes: list[Minute] = Field(description="The last hour, oldest minute first.")
    late_hour: int
    late_day: int
    failed_hour: int
    failed_day: int
    snapshot: monitoring.Snapshot


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


async def task_timings(engine: AsyncEngine, task: str, limit: int = TASK_JOBS) -> list[JobTiming]:
    """The latest ``limit`` started jobs of ``task``, oldest first."""
    return [
        JobTiming(
            id=str(r["id"]),
            name=r["name"],
            state=str(r["state_name"] or r["state_type"]),
            scheduled=_utc(r["scheduled"]),
            delay=float(r["delay"]) if r["delay"] is not None else 0.0,
            duration=float(r["duration"]) if r["duration"] is not None else None,
            failed=str(r["state_type"]) in FAILED_TYPES,
        )
        for r in await history.task_runs(engine, task, limit=limit)
    ]


def fill_minutes(rows: list[dict[str, object]], now: dt.datetime) -> list[Minute]:
    """One ``Minute`` for each of the ``MINUTES`` minutes up to ``now``'s, zero where none
    started (rows: ``minute`` in unix seconds, ``started``, ``p50``, ``p99``)."""
    last = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    slots = [last - dt.timedelta(minutes=MINUTES - 1 - i) for i in range(MINUTES)]
    by_start = {
        dt.datetime.fromtimestamp(float(str(r["minute"])), dt.UTC): r
        for r in rows
        if r.get("minute") is not None
    }
    filled = []
    for start in slots:
        row = by_start.get(start)
        if row is None:
            filled.append(Minute(start=start))
            continue
        filled.append(
            Minute(
                start=start,
                started=int(str(row["started"])),
                p50=float(str(row["p50"])) if row["p50"] is not None else None,
                p99=float(str(row["p99"])) if row["p99"] is not None else None,
            )
        )
    return filled


async def platform_figures(settings: Settings, engine: AsyncEngine) -> PlatformFigures:
    """The platform's last hour and day, and its pools' workers, now."""
    snapshot = await monitoring.take_snapshot(settings, engine)
    found = await history.platform_history(engine)
    outcomes = found.outcomes
    now = dt.datetime.fromtimestamp(float(outcomes["now"]), dt.UTC)
    return PlatformFigures(
        taken=now,
        minutes=fill_minutes(found.per_minute, now),
        late_hour=int(outcomes["late_hour"]),
        late_day=int(outcomes["late_day"]),
        failed_hour=int(outcomes["failed_hour"]),
        failed_day=int(outcomes["failed_day"]),
        snapshot=snapshot,
    )
