"""Schedules: validation, and the plan that tells Prefect when to create runs.

A task has at most one schedule kind — ``cron``, ``every`` (interval), ``at`` (one-off) or
``rrule`` — in an IANA time zone, between optional ``start`` and ``end``. Prefect's own schedule
types do the work at run time, but its cron and interval schedules know no window. So:

- cron without a window → Prefect ``CronSchedule`` (DST-correct through croniter);
- interval without a window → Prefect ``IntervalSchedule`` (fixed length, Prefect's anchor);
- everything else → Prefect ``RRuleSchedule`` whose DTSTART and UNTIL *are* the window, so
  Prefect's scheduler never creates a run outside it. A cron becomes an equivalent RRULE
  (``_cron_rrule``), an interval a SECONDLY..DAILY rule in UTC (a fixed length), a one-off a
  ``COUNT=1`` rule.

RRULE times are written as naive wall-clock times; Prefect localises them in the schedule's
time zone, which keeps "09:00 every day" at nine o'clock across DST changes.

A schedule must fire: ``check_fires`` refuses one with no run time inside its window (or none
at all, like ``0 0 31 2 *``). Prefect would accept it and then fail or search on every loop of
its scheduler: croniter raises for a cron without a date, and dateutil searches an RRULE without
one up to the year 9999. The check is on the calendar, not the clock: a window that has passed
is accepted (its runs are simply in the past, and a preview shows none ahead).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

import dateutil.rrule
import dateutil.tz
from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel

from taskscheduler import _cron_rrule, _rrule_search, durations, errors

Kind = Literal["cron", "every", "at", "rrule"]

_RRULE_TIME = "%Y%m%dT%H%M%S"
# Intervals count from a round instant, so "every 5m" fires at :00, :05, ... as people expect.
INTERVAL_ANCHOR = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_INTERVAL_FREQS = (("DAILY", 86400), ("HOURLY", 3600), ("MINUTELY", 60), ("SECONDLY", 1))
# How far ahead a schedule's first run time is looked for: croniter's own horizon, and so that
# of Prefect's cron schedules. Searched from the window's start, else from SEARCH_FROM.
SEARCH_YEARS = 50
SEARCH_FROM = dt.datetime(2000, 1, 1)
# The sane range of times (``models.EARLIEST``/``LATEST``), for an RRULE's own DTSTART.
FIRST_YEAR, LAST_YEAR = 2000, 2200


class Plan(BaseModel):
    """The Prefect schedule to create for a task: one of a cron, an interval or an RRULE."""

    kind: Kind
    timezone: str
    cron: str | None = None
    interval: float | None = None
    rrule: str | None = None

    def describe(self) -> str:
        """A short human-readable form, as ``tasks list`` shows it."""
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone})"
        if self.interval is not None:
            return f"every {dt.timedelta(seconds=self.interval)}"
        return f"rrule {self.rrule} ({self.timezone})"


def validate(kind: Kind | None, expression: str | None, timezone: str) -> None:
    """Refuse a schedule that cannot be used, naming the field."""
    if kind == "cron":
        assert expression is not None
        if len(expression.split()) != 5 and not expression.startswith("@"):
            raise errors.InvalidSchedule(
                "cron", "use five fields (minute hour day month weekday); for seconds use every"
            )
        if not croniter.is_valid(expression):
            raise errors.InvalidSchedule("cron", f"{expression!r} is not a valid cron expression")
    elif kind == "rrule":
        assert expression is not None
        _parse_rrule(expression, ZoneInfo(timezone))


def check_fires(
    kind: Kind | None,
    expression: str | None,
    timezone: str,
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> None:
    """Refuse a schedule (already ``validate``-d) that has no run time inside its window,
    naming the schedule's field. Intervals always fire at their start; ``at`` is checked
    against the window by the model."""
    zone = ZoneInfo(timezone)
    last = _local(end, zone) if end is not None else None
    if kind == "cron":
        assert expression is not None
        begin = _second_up(_local(start, zone)) if start is not None else SEARCH_FROM
        try:
            first = croniter(expression, begin - dt.timedelta(seconds=1)).get_next(dt.datetime)
        except CroniterBadDateError:
            raise errors.InvalidSchedule(
                "cron", f"{expression!r} never fires: no date matches its day and month fields"
            ) from None
        if end is not None and last is not None and first > last:
            raise errors.InvalidSchedule("cron", _none_inside(start, end))
    elif kind == "rrule":
        assert expression is not None
        dtstart, parts = _parse_rrule(expression, zone)
        begin = _second_up(_rrule_dtstart(dtstart, start, zone) or SEARCH_FROM)
        horizon = min(_years_later(begin, SEARCH_YEARS), dt.datetime(LAST_YEAR, 1, 1))
        bounds = [horizon]
        if last is not None:
            bounds.append(last)
        if "UNTIL" in parts:
            bounds.append(_rrule_time(parts["UNTIL"], zone))
        until = min(bounds)
        body = ";".join(f"{k}={v}" for k, v in parts.items() if k not in ("COUNT", "UNTIL"))
        try:
            found = _rrule_search.first_run(body, dtstart=begin, until=until)
        except (ValueError, TypeError, OverflowError) as exc:
            raise errors.InvalidSchedule("rrule", f"invalid RRULE: {exc}") from None
        if found is None:
            if until == horizon:
                anchored = dtstart is not None or start is not None
                since = f"from {begin.isoformat(sep=' ')}" if anchored else "of calendar"
                raise errors.InvalidSchedule(
                    "rrule", f"never fires: no run time in {SEARCH_YEARS} years {since}"
                )
            if end is not None and until == last:
                raise errors.InvalidSchedule("rrule", _none_inside(start, end))
            raise errors.InvalidSchedule(
                "rrule", f"has no run time before its UNTIL {until.isoformat(sep=' ')}"
            )


def _none_inside(start: dt.datetime | None, end: dt.datetime) -> str:
    """Why a schedule that fires elsewhere is refused: its window holds none of its times."""
    if start is not None:
        return f"has no run time between start {start.isoformat()} and end {end.isoformat()}"
    return f"has no run time before end {end.isoformat()}"


def _years_later(value: dt.datetime, years: int) -> dt.datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February
        return value.replace(year=value.year + years, day=28)


def plan(
    kind: Kind,
    expression: str,
    *,
    timezone: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> Plan:
    """The Prefect schedule for a task's schedule, with its window folded in."""
    zone = ZoneInfo(timezone)
    windowed = start is not None or end is not None
    until = _local(end, zone) if end else None
    if kind == "cron":
        if not windowed:
            return Plan(kind=kind, timezone=timezone, cron=expression)
        begin = _local(start or now, zone)  # the converter rounds up, never before start
        try:
            text = _cron_rrule.cron_to_rrule(expression, dtstart=begin, until=until)
        except ValueError as exc:
            raise errors.InvalidSchedule("cron", str(exc)) from None
        return Plan(kind=kind, timezone=timezone, rrule=text)
    if kind == "every":
        seconds = durations.parse_duration(expression).total_seconds()
        if not windowed:
            return Plan(kind=kind, timezone=timezone, interval=seconds)
        if seconds != int(seconds):
            raise errors.InvalidSchedule(
                "every", "with start or end, the interval must be a whole number of seconds"
            )
        freq, size = next((f, s) for f, s in _INTERVAL_FREQS if seconds % s == 0)
        step = dt.timedelta(seconds=seconds)
        if start is not None:
            first = start
        else:  # keep the round phase of an unwindowed interval (see INTERVAL_ANCHOR)
            first = INTERVAL_ANCHOR + step * -((INTERVAL_ANCHOR - now) // step)
        begin = _second_up(first.astimezone(dt.UTC).replace(tzinfo=None))
        body = f"FREQ={freq};INTERVAL={int(seconds // size)}"
        if end is not None:
            body += f";UNTIL={end.astimezone(dt.UTC).strftime(_RRULE_TIME)}"
        rule = f"DTSTART:{begin.strftime(_RRULE_TIME)}\nRRULE:{body}"
        return Plan(kind=kind, timezone="UTC", rrule=rule)
    if kind == "at":
        when = _local(dt.datetime.fromisoformat(expression), zone)
        rule = f"DTSTART:{when.strftime(_RRULE_TIME)}\nRRULE:FREQ=DAILY;COUNT=1"
        return Plan(kind=kind, timezone=timezone, rrule=rule)
    dtstart, parts = _parse_rrule(expression, zone)
    dtstart = _second_up(_rrule_dtstart(dtstart, start, zone) or _local(now, zone))
    if until is not None:
        if "COUNT" in parts:
            raise errors.InvalidSchedule("rrule", "COUNT cannot be combined with end; use UNTIL")
        current = parts.get("UNTIL")
        if current is None or _rrule_time(current, zone) > until:
            parts["UNTIL"] = until.strftime(_RRULE_TIME)
    body = ";".join(f"{k}={v}" for k, v in parts.items())
    return Plan(
        kind=kind, timezone=timezone, rrule=f"DTSTART:{dtstart.strftime(_RRULE_TIME)}\nRRULE:{body}"
    )


def preview(p: Plan, count: int, *, after: dt.datetime) -> list[dt.datetime]:
    """The next ``count`` fire times of a plan after ``after``, in UTC (for previews only).

    Prefect's scheduler is the authority at run time; this mirrors it for display.
    """
    zone = ZoneInfo(p.timezone)
    if p.cron is not None:
        it = croniter(p.cron, after.astimezone(zone))
        try:
            return [it.get_next(dt.datetime).astimezone(dt.UTC) for _ in range(count)]
        except CroniterBadDateError:  # check_fires refuses such a cron before it gets here
            raise errors.InvalidSchedule("cron", f"{p.cron!r} never fires") from None
    if p.interval is not None:
        epoch = INTERVAL_ANCHOR
        step = dt.timedelta(seconds=p.interval)
        first = epoch + step * (int((after - epoch) / step) + 1)
        return [(first + step * i).astimezone(dt.UTC) for i in range(count)]
    assert p.rrule is not None
    rule = dateutil.rrule.rrulestr(p.rrule, cache=False, forceset=True)
    # Localise as Prefect does (dateutil's zone: a wall time in a DST gap takes the offset after
    # the change), then drop the duplicates that a gap or an overlap can produce.
    local = dateutil.tz.gettz(p.timezone)
    local_after = after.astimezone(zone).replace(tzinfo=None) - dt.timedelta(hours=3)
    seen: list[dt.datetime] = []
    for wall in rule.xafter(local_after, inc=False):
        instant = wall.replace(tzinfo=local).astimezone(dt.UTC)
        if instant > after and instant not in seen:
            seen.append(instant)
        if len(seen) >= count:
            break
    return sorted(seen)


def _rrule_dtstart(
    dtstart: dt.datetime | None, start: dt.datetime | None, zone: ZoneInfo
) -> dt.datetime | None:
    """Where a user's RRULE starts, its own DTSTART and the window's start taken together
    (None: from now)."""
    if start is None:
        return dtstart
    if dtstart is not None and dtstart < _local(start, zone):
        raise errors.InvalidSchedule("rrule", "its DTSTART is before start; drop one of them")
    return dtstart or _local(start, zone)


def _second_up(value: dt.datetime) -> dt.datetime:
    """``value`` rounded up to a whole second: RRULE times have none smaller, and a schedule
    must not fire before its start."""
    if value.microsecond:
        return value.replace(microsecond=0) + dt.timedelta(seconds=1)
    return value


def _local(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Naive wall-clock time in ``zone``, as RRULE strings carry it."""
    if value.tzinfo is None:
        return value
    return value.astimezone(zone).replace(tzinfo=None)


def _rrule_time(text: str, zone: ZoneInfo) -> dt.datetime:
    """An RRULE date-time (``20270101T000000`` or ``...Z``) as naive wall-clock time in zone."""
    if text.endswith("Z"):
        utc = dt.datetime.strptime(text[:-1], _RRULE_TIME).replace(tzinfo=dt.UTC)
        return _local(utc, zone)
    if len(text) == 8:
        return dt.datetime.strptime(text, "%Y%m%d")
    return dt.datetime.strptime(text, _RRULE_TIME)


def _parse_rrule(text: str, zone: ZoneInfo) -> tuple[dt.datetime | None, dict[str, str]]:
    """Split a user's RRULE into its DTSTART (naive, local) and its rule parts, validating both.

    One RRULE line, optionally after a DTSTART line: the rule Prefect stores is rebuilt from
    these parts, with times in the task's zone.
    """
    dtstart: dt.datetime | None = None
    bodies: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        upper = line.upper()
        if not line:
            continue
        if upper.startswith("DTSTART"):
            parsed = dateutil.rrule.rrulestr(f"{line}\nRRULE:FREQ=DAILY;COUNT=1")
            start = parsed._dtstart  # type: ignore[union-attr]
            dtstart = _local(start, zone) if start.tzinfo else start
        elif upper.startswith("RRULE:"):
            bodies.append(line[6:])
        elif upper.startswith("FREQ="):
            bodies.append(line)
        else:
            raise errors.InvalidSchedule(
                "rrule", f"unsupported line {line!r}: give one RRULE, optionally after DTSTART"
            )
    if len(bodies) != 1:
        raise errors.InvalidSchedule("rrule", "give exactly one RRULE")
    try:
        parts = dict(part.split("=", 1) for part in bodies[0].strip(";").split(";"))
    except ValueError:
        raise errors.InvalidSchedule("rrule", f"cannot read {bodies[0]!r}") from None
    parts = {k.upper(): v.upper() for k, v in parts.items()}
    if "BYEASTER" in parts:
        # A dateutil extension, not RFC 5545, and the one part without a calendar cycle
        # (see _rrule_search).
        raise errors.InvalidSchedule("rrule", "BYEASTER is not part of RFC 5545")
    for count in ("INTERVAL", "COUNT"):
        if count in parts and not (parts[count].isdigit() and int(parts[count]) >= 1):
            raise errors.InvalidSchedule("rrule", f"{count} must be a whole number from 1")
    if dtstart is not None and not FIRST_YEAR <= dtstart.year < LAST_YEAR:
        raise errors.InvalidSchedule(
            "rrule", f"its DTSTART must be between {FIRST_YEAR} and {LAST_YEAR}"
        )
    if "UNTIL" in parts:
        try:
            parts["UNTIL"] = _rrule_time(parts["UNTIL"], zone).strftime(_RRULE_TIME)
        except ValueError:
            raise errors.InvalidSchedule("rrule", "cannot read its UNTIL") from None
    body = ";".join(f"{k}={v}" for k, v in parts.items())
    try:  # parsing only: whether it fires is check_fires' question, asked with bounded work
        dateutil.rrule.rrulestr(f"RRULE:{body}", dtstart=dtstart or SEARCH_FROM)
    except (ValueError, TypeError) as exc:
        raise errors.InvalidSchedule("rrule", f"invalid RRULE: {exc}") from None
    return dtstart, parts
