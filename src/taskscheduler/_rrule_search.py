"""The first run time of an RRULE inside a window, found with bounded work.

Why a module of its own: dateutil stops iterating a rule only when it yields a time past the
rule's UNTIL or COUNT, or at the end of its calendar (the year 9999). A rule that yields nothing,
such as ``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``, is therefore searched period by period up to the
year 9999 whatever its UNTIL: about 9 s for a daily rule and over a minute for a minutely one on
a 2-core machine. Asking dateutil naively whether such a rule fires costs that much per request
(and Prefect's scheduler pays it on every loop, which is why such a rule must be refused at all).

So the search runs on a copy of the rule moved forward by whole calendar cycles, so that
dateutil's own end of the calendar falls shortly after the window:

* the Gregorian calendar repeats every 400 years (146 097 days, a whole number of weeks): every
  date keeps its weekday, day of the year, ISO week and leap year, so every BY-part of an
  RFC 5545 rule and every INTERVAL counted from its DTSTART keeps its meaning;
* within 2000-2098, 2102-2198 and 9902-9998 every fourth year is a leap year, next to years
  that follow the same rule, so there the calendar repeats every 28 years: a window inside one
  of the first two blocks moves into the last with the same weekdays and leap years, and the
  search ends at most 28 years after the window rather than 400.

BYEASTER (a dateutil extension, not RFC 5545) follows no such cycle; ``schedules`` refuses it.
"""

from __future__ import annotations

import datetime as dt

import dateutil.rrule

__all__ = ["first_run"]

_LONG_CYCLE = 400
_SHORT_CYCLE = 28
# Years where leap years are simply every fourth (for the year and both its neighbours).
_SHORT_CYCLE_BLOCKS = ((2000, 2098), (2102, 2198))
_TARGET_FIRST, _TARGET_LAST = 9902, 9998  # dateutil's calendar ends with 9999


def first_run(rule: str, *, dtstart: dt.datetime, until: dt.datetime) -> dt.datetime | None:
    """The first time of ``rule`` (an RRULE body without COUNT or UNTIL) from ``dtstart`` to
    ``until`` inclusive, both naive wall-clock times; None when it has none there.

    The work is bounded by the window plus at most one calendar cycle, whatever the rule.
    """
    if until < dtstart:
        return None
    shift = _shift(dtstart.year, until.year)
    moved = dateutil.rrule.rrulestr(
        f"RRULE:{rule}", dtstart=dtstart.replace(year=dtstart.year + shift)
    )
    last = until.replace(year=until.year + shift)
    for found in moved:  # ends at the end of dateutil's calendar, shortly after the window
        if found > last:
            return None
        return found.replace(year=found.year - shift)
    return None


def _shift(first: int, last: int) -> int:
    """Years to move a window from ``first`` to ``last`` by, keeping every date's calendar."""
    for low, high in _SHORT_CYCLE_BLOCKS:
        if low <= first and last <= high:
            aligned = _aligned(first)
            shift = aligned + _SHORT_CYCLE * ((_TARGET_LAST - last - aligned) // _SHORT_CYCLE)
            if shift >= aligned:  # the whole window fits in the target block
                return shift
    return _LONG_CYCLE * max(0, (_TARGET_LAST - last) // _LONG_CYCLE)


def _aligned(year: int) -> int:
    """The shift taking ``year`` to a year of the target block with the same calendar: as long
    (same place among the leap years) and starting on the same weekday. Each of those 28
    combinations occurs once in any 28 years of a block, so one is always found."""
    weekday = dt.date(year, 1, 1).weekday()
    for target in range(_TARGET_FIRST, _TARGET_FIRST + _SHORT_CYCLE):
        if target % 4 == year % 4 and dt.date(target, 1, 1).weekday() == weekday:
            return target - year
    raise AssertionError("every calendar occurs once in 28 years of a block")
