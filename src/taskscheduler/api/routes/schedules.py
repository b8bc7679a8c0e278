"""``/v1/schedules/preview``: the next run times of a schedule, before any task has it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from taskscheduler import models
from taskscheduler.api.routes import ERRORS
from taskscheduler.wire.bodies import Preview

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=ERRORS)

MAX_PREVIEW = 50


class ScheduleQuery(BaseModel):
    """A schedule, as the task fields of the same names (all optional; at most one kind)."""

    cron: str | None = Field(default=None, max_length=200)
    every: str | None = Field(default=None, max_length=100)
    at: str | None = Field(default=None, max_length=100)
    rrule: str | None = Field(default=None, max_length=2000)
    timezone: str = Field(default="UTC", max_length=100)
    start: str | None = Field(default=None, max_length=100)
    end: str | None = Field(default=None, max_length=100)
    count: int = Field(default=5, ge=1, le=MAX_PREVIEW)


@router.get("/preview", response_model=Preview, name="schedule.preview")
async def preview(query: Annotated[ScheduleQuery, Query()]) -> Preview:
    """The next ``count`` run times, checked by the same rules as a task's schedule (422
    names the bad field). Prefect's scheduler decides at run time; this mirrors it."""
    fields = query.model_dump(exclude={"count"}, exclude_none=True)
    schedule = models.build_schedule(fields)
    times = schedule.next_times(query.count, dt.datetime.now(dt.UTC))
    zone = ZoneInfo(schedule.timezone)
    return Preview(
        schedule=schedule.describe(),
        timezone=schedule.timezone,
        next=times,
        next_local=[t.astimezone(zone).isoformat() for t in times],
    )
