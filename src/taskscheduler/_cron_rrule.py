"""Convert a cron expression into an equivalent RFC 5545 RRULE string.

Why: Prefect's ``CronSchedule`` has no start/end, but its ``RRuleSchedule`` honours
DTSTART/UNTIL.  A cron task with a window is therefore registered as an RRULE so the
server creates no run outside the window (one DST corner case aside, see below).

Mapping (fields as expanded by croniter, which is what Prefect's ``CronSchedule`` uses):

* ``FREQ=DAILY`` with every time field listed (``BYHOUR``, ``BYMINUTE``, ``BYSECOND``;
  ``*`` becomes the full range) because dateutil fills unspecified BY-fields from
  DTSTART.
* Month -> ``BYMONTH``; day of month -> ``BYMONTHDAY``; day of week -> ``BYDAY``.
* Cron's day rule: when both day of month and day of week are restricted the job fires
  when *either* matches (croniter's and Prefect's default ``day_or=True``).  That
  becomes two RRULE lines sharing one DTSTART (an rruleset); dateutil yields their
  union without duplicates.
* 6-field expressions carry seconds in the *last* field (croniter's default); 7-field
  expressions are accepted only when the year field is ``*``.
* ``?`` is croniter's synonym for ``*`` in the day fields and is accepted as such.

Rejected with ``ValueError`` (no RRULE equivalent in this mapping): ``L``, ``W``,
``#``, random ``R`` and hashed ``H`` fields, a restricted year field, and a day of
month that can never occur in the chosen months (the RRULE would search until year
9999).  Invalid expressions raise ``ValueError`` too.

Window: ``dtstart`` and ``until`` are naive wall-clock times in the task's time zone;
Prefect's ``RRuleSchedule`` attaches its ``timezone`` to them.  DTSTART is the window
start rounded *up* to the whole second (not down to the minute: a 5-field cron fires at
second 0, so truncating 10:00:30 to 10:00:00 would let a 10:00:00 run slip in before
the window), and UNTIL is the window end truncated to the second.  Both bounds are
inclusive.

DST (Prefect resolves RRULE wall times with dateutil's time zones, CronSchedule with
croniter wall times localized at fold=0):

* Fall-back: a repeated wall time runs once, at its first occurrence (02:30 CEST in
  Europe/Berlin) -- identical to ``CronSchedule``.
* Spring-forward gap: a nonexistent wall time gets the offset *after* the transition,
  so ``30 2 * * *`` runs at 01:30 CET on that day, whereas ``CronSchedule`` runs it at
  03:30 CEST.  Schedules that also fire at the earlier instant (``*/10 * * * *``) are
  unaffected: the duplicate is dropped.  Matching ``CronSchedule`` would need the
  time zone and per-transition RDATE/EXDATE lines, impossible for an open-ended
  window, so this difference is accepted.
* Corner case of the above: dateutil compares DTSTART/UNTIL in wall-clock time, so a
  window starting inside the hour before a gap (01:45) still admits the 02:30 run,
  which then lands before the window (01:30 CET).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from croniter import CroniterError, croniter

__all__ = ["cron_to_rrule"]

# croniter numbers days of week 0=Sunday .. 6=Saturday (7 is folded into 0).
_RRULE_WEEKDAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
# Longest month length (February counted as 29: leap years exist).
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MONTH_NAMES = re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec")
_DOW_NAMES = re.compile(r"sun|mon|tue|wed|thu|fri|sat")
_PLAIN_CHARS = frozenset("0123456789*,-/?")
_FEATURES = {
    "l": "'L' (last day)",
    "w": "'W' (nearest weekday)",
    "#": "'#' (nth weekday of month)",
    "r": "'R' (random value)",
    "h": "'H' (hashed value)",
}

_MONTH, _DOW, _YEAR = 3, 4, 6


def cron_to_rrule(expr: str, *, dtstart: datetime.datetime, until: datetime.datetime | None) -> str:
    """Return an RRULE string that fires exactly when ``expr`` does, within the window.

    ``dtstart``/``until`` are naive wall-clock datetimes in the schedule's time zone.
    Raises ``ValueError`` for invalid expressions and for cron features that cannot be
    combined with a start/end window.
    """
    if dtstart.tzinfo is not None or (until is not None and until.tzinfo is not None):
        raise ValueError("dtstart and until must be naive wall-clock datetimes")
    if until is not None and until < dtstart:
        raise ValueError("the schedule end is before its start")

    fields = _expand(expr)
    minutes, hours, doms, months, dows = fields[:5]
    seconds = fields[5] if len(fields) > 5 else [0]
    if len(fields) > _YEAR and fields[_YEAR] != ["*"]:
        raise _unsupported(expr, "a restricted year field")

    month_list = _values(months, 1, 12)
    dom_list = None if doms == ["*"] else _values(doms, 1, 31)
    dow_list = None if dows == ["*"] else _values(dows, 0, 6)
    # Without this, dateutil would search day by day until year 9999.
    if dom_list is not None and min(dom_list) > max(_DAYS_IN_MONTH[m - 1] for m in month_list):
        if dow_list is None:
            raise ValueError(f"cron expression {expr!r} never fires")
        dom_list = None  # the day-of-week side of the OR still fires

    common = [
        ("BYHOUR", _join(_values(hours, 0, 23))),
        ("BYMINUTE", _join(_values(minutes, 0, 59))),
        ("BYSECOND", _join(_values(seconds, 0, 59))),
    ]
    if until is not None:
        common.append(("UNTIL", _format(until.replace(microsecond=0))))
    head = [("FREQ", "DAILY")]
    if months != ["*"]:
        head.append(("BYMONTH", _join(month_list)))

    day_parts: list[list[tuple[str, str]]] = []
    if dom_list is not None:
        day_parts.append([("BYMONTHDAY", _join(dom_list))])
    if dow_list is not None:
        day_parts.append([("BYDAY", ",".join(_RRULE_WEEKDAYS[d] for d in dow_list))])
    if not day_parts:
        day_parts.append([])

    start = dtstart
    if start.microsecond:
        start = start.replace(microsecond=0) + datetime.timedelta(seconds=1)
    lines = [f"DTSTART:{_format(start)}"]
    for day_part in day_parts:
        parts = head + day_part + common
        lines.append("RRULE:" + ";".join(f"{key}={value}" for key, value in parts))
    return "\n".join(lines)


def _expand(expr: str) -> list[list[int | str]]:
    """Expand ``expr`` with croniter after rejecting features RRULE cannot express."""
    raw_fields = expr.split()
    if not raw_fields:
        raise ValueError("empty cron expression")
    if not raw_fields[0].startswith("@"):  # aliases expand to plain fields
        for index, raw in enumerate(raw_fields):
            rest = raw.lower()
            if index == _MONTH:
                rest = _MONTH_NAMES.sub("", rest)
            elif index == _DOW:
                rest = _DOW_NAMES.sub("", rest)
            for char, feature in _FEATURES.items():
                if char in rest:
                    raise _unsupported(expr, feature)
            if not set(rest) <= _PLAIN_CHARS:
                raise ValueError(f"invalid cron expression {expr!r}")
    try:
        parsed = croniter(expr)
    except (CroniterError, ValueError) as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from exc
    # Belt and braces: croniter keeps these outside the expanded fields.
    if parsed.nth_weekday_of_month or parsed.nearest_weekday:
        raise _unsupported(expr, "'#', 'L' or 'W'")
    expanded: list[list[int | str]] = [list(field) for field in parsed.expanded]
    if any("l" in field for field in expanded):
        raise _unsupported(expr, _FEATURES["l"])
    return expanded


def _values(field: Sequence[int | str], low: int, high: int) -> list[int]:
    """List a field's values explicitly, because dateutil defaults missing ones."""
    if list(field) == ["*"]:
        return list(range(low, high + 1))
    return sorted({int(value) for value in field})


def _join(values: Sequence[int]) -> str:
    return ",".join(str(value) for value in values)


def _format(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _unsupported(expr: str, feature: str) -> ValueError:
    return ValueError(
        f"cron expression {expr!r} uses {feature}, which has no RRULE equivalent "
        "and cannot be combined with a schedule start/end"
    )
