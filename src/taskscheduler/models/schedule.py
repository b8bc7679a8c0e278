"""When a task runs: the ``Schedule`` model and the builder shared with ``TaskSpec``."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from taskscheduler import durations, errors, schedules
from taskscheduler.models.fields import Duration, UtcDateTime, check_time


class Schedule(BaseModel):
    """When a task runs: at most one of cron / every / at / rrule, in a zone, within a window.

    Naive times are wall-clock times in ``timezone``. A ``TaskSpec`` is a schedule plus the rest
    of the task; a schedule alone is what a preview of the next run times needs.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    cron: str | None = None
    every: Duration | None = None
    at: UtcDateTime | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    start: UtcDateTime | None = None
    end: UtcDateTime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("every")
    @classmethod
    def _every_at_least_a_second(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value < dt.timedelta(seconds=1):
            raise ValueError("interval must be at least 1 second")
        return value

    @model_validator(mode="after")
    def _schedule_consistent(self, info: ValidationInfo) -> Schedule:
        zone = ZoneInfo(self.timezone)
        for field in ("at", "start", "end"):
            value = getattr(self, field)
            if value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=zone)
                setattr(self, field, value)
            if value is not None:
                check_time(value, field)
        chosen = [k for k in ("cron", "every", "at", "rrule") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise errors.InvalidSchedule(chosen[1], f"give at most one schedule, not {chosen}")
        if self.start and self.end and self.end <= self.start:
            raise errors.InvalidTask("end", "must be after start")
        if self.at is not None:
            if self.start and self.at < self.start:
                raise errors.InvalidSchedule("at", "is before start")
            if self.end and self.at > self.end:
                raise errors.InvalidSchedule("at", "is after end")
        schedules.validate(self.schedule_kind, self.schedule_expression, self.timezone)
        if not (info.context or {}).get("stored"):
            schedules.check_fires(
                self.schedule_kind,
                self.schedule_expression,
                self.timezone,
                start=self.start,
                end=self.end,
            )
        return self

    @property
    def schedule_kind(self) -> schedules.Kind | None:
        """Which of cron / every / at / rrule the task uses, if any."""
        for kind in ("cron", "every", "at", "rrule"):
            if getattr(self, kind) is not None:
                return kind
        return None

    @property
    def schedule_expression(self) -> str | None:
        """The schedule as text: the cron or RRULE string, seconds, or an ISO time."""
        if self.cron is not None:
            return self.cron
        if self.rrule is not None:
            return self.rrule
        if self.every is not None:
            return durations.format_duration(self.every)
        if self.at is not None:
            return self.at.isoformat()
        return None

    def schedule_plan(self, now: dt.datetime) -> schedules.Plan | None:
        """What Prefect should be told, with the window folded in (see ``schedules``)."""
        kind = self.schedule_kind
        if kind is None:
            return None
        return schedules.plan(
            kind,
            self.schedule_expression or "",
            timezone=self.timezone,
            start=self.start,
            end=self.end,
            now=now,
        )

    def describe(self) -> str | None:
        """The schedule in one line, e.g. ``cron 0 9 * * 1-5 (Europe/Berlin) until ...``."""
        kind = self.schedule_kind
        if kind is None:
            return None
        text = f"{kind} {self.schedule_expression}"
        if kind != "every":
            text += f" ({self.timezone})"
        if self.start is not None:
            text += f" from {self.start.isoformat()}"
        if self.end is not None:
            text += f" until {self.end.isoformat()}"
        return text

    def next_times(self, count: int, now: dt.datetime) -> list[dt.datetime]:
        """The next ``count`` run times after ``now``, in UTC (a preview: Prefect decides)."""
        plan = self.schedule_plan(now)
        return schedules.preview(plan, count, after=now) if plan else []


_M = TypeVar("_M", bound=Schedule)


def build_schedule(data: dict[str, Any]) -> Schedule:
    """Build a bare ``Schedule`` (for previews), with the errors of ``build_spec``."""
    return build_model(Schedule, data)


def build_model(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "task"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "string_pattern_mismatch" and field == "name":
            message = "use 1-63 lowercase letters, digits and dashes, not starting with a dash"
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, errors.InvalidTask):
            raise cause from exc
        raise errors.InvalidTask(field, message) from exc
