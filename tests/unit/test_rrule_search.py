"""The bounded first-run search of an RRULE agrees with dateutil's own unbounded iteration."""

from __future__ import annotations

import datetime as dt
import itertools

import dateutil.rrule
import pytest

from taskscheduler import _rrule_search

# Rules whose calendar facts the move by whole cycles must keep: leap days with weekdays, ISO
# weeks, days of the year, positions in a set, and intervals counted from DTSTART.
RULES = [
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "FREQ=YEARLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
    "FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH",
    "FREQ=YEARLY;BYWEEKNO=1;BYDAY=MO;BYMONTH=12",
    "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1",
    "FREQ=MONTHLY;BYDAY=5FR;BYMONTH=2",
    "FREQ=WEEKLY;INTERVAL=3;BYDAY=SU;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=DAILY;INTERVAL=5;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYYEARDAY=366",
    "FREQ=HOURLY;INTERVAL=5;BYHOUR=3;BYDAY=SA",
]
STARTS = [
    dt.datetime(2000, 1, 1),
    dt.datetime(2026, 11, 30, 9, 15),
    dt.datetime(2071, 2, 28, 23),  # windows that cross 2100 move by 400 years
    dt.datetime(2098, 12, 31, 12),
    dt.datetime(2101, 3, 1),
    dt.datetime(2150, 7, 4, 6),
]
SPANS = [dt.timedelta(days=1), dt.timedelta(days=400), dt.timedelta(days=50 * 365)]


def brute_force(rule: str, dtstart: dt.datetime, until: dt.datetime) -> dt.datetime | None:
    """dateutil's answer, unbounded (these rules all fire, so it ends)."""
    first = next(iter(dateutil.rrule.rrulestr(f"RRULE:{rule}", dtstart=dtstart)))
    return first if first <= until else None


@pytest.mark.parametrize("rule", RULES)
def test_first_run_matches_dateutil_for_every_window(rule: str) -> None:
    for start, span in itertools.product(STARTS, SPANS):
        until = min(start + span, dt.datetime(2199, 12, 31))
        expected = brute_force(rule, start, until)
        assert _rrule_search.first_run(rule, dtstart=start, until=until) == expected, (
            rule,
            start,
            until,
        )


def test_a_rule_found_only_after_the_window_is_not_in_it() -> None:
    rule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"
    start = dt.datetime(2026, 3, 1)
    assert _rrule_search.first_run(rule, dtstart=start, until=dt.datetime(2028, 2, 28)) is None
    assert _rrule_search.first_run(rule, dtstart=start, until=dt.datetime(2028, 2, 29)) == (
        dt.datetime(2028, 2, 29)
    )


def test_an_empty_window_has_no_run() -> None:
    start = dt.datetime(2026, 1, 1)
    assert (
        _rrule_search.first_run("FREQ=DAILY", dtstart=start, until=start.replace(year=2025)) is None
    )


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=SECONDLY;BYYEARDAY=367",
        "FREQ=YEARLY;BYWEEKNO=54",
    ],
)
def test_a_rule_that_never_fires_has_no_first_run(rule: str) -> None:
    start = dt.datetime(2026, 1, 1)
    assert _rrule_search.first_run(rule, dtstart=start, until=start.replace(year=2076)) is None


@pytest.mark.parametrize("year", [*range(2000, 2098, 7), *range(2102, 2198, 9)])
def test_a_short_window_moves_near_the_end_of_the_calendar_keeping_weekdays_and_leap_days(
    year: int,
) -> None:
    shift = _rrule_search._shift(year, year + 1)
    assert shift % 4 == 0 and 9902 <= year + shift <= 9998
    for day in (dt.date(year, 1, 1), dt.date(year, 3, 1), dt.date(year + 1, 12, 31)):
        moved = day.replace(year=day.year + shift)
        assert moved.weekday() == day.weekday()
        assert moved.timetuple().tm_yday == day.timetuple().tm_yday


def test_a_window_across_2100_moves_by_400_year_cycles() -> None:
    assert _rrule_search._shift(2090, 2110) % 400 == 0
