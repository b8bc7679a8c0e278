"""Prove that ``cron_to_rrule`` fires exactly when the cron expression does.

Reference: croniter (the engine behind Prefect's ``CronSchedule``) and Prefect's own
schedule classes; the converted string is fed to Prefect's ``RRuleSchedule``.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dateutil.rrule
import pytest
from croniter import croniter
from prefect.client.schemas.schedules import RRuleSchedule as ClientRRuleSchedule
from prefect.server.schemas.schedules import CronSchedule, RRuleSchedule

from taskscheduler._cron_rrule import cron_to_rrule

UTC = datetime.UTC
D = datetime.datetime


@dataclass(frozen=True)
class Case:
    """One expression, the zone it runs in and its (naive, local) window."""

    expr: str
    tz: str
    start: datetime.datetime
    until: datetime.datetime | None
    limit: int = 300  # compare the first `limit` fire times when there is no until


CASES = {
    "every-minute": Case("* * * * *", "UTC", D(2026, 11, 27, 10, 0, 30), None),
    "every-7-minutes": Case("*/7 * * * *", "Europe/Paris", D(2026, 1, 1), None),
    "weekdays-9am": Case("0 9 * * 1-5", "America/New_York", D(2026, 2, 1), D(2026, 4, 1)),
    "weekday-names": Case("15 8 * * mon-fri", "Europe/Paris", D(2026, 1, 1), D(2026, 3, 1)),
    "berlin-0230-march": Case("30 2 * * *", "Europe/Berlin", D(2026, 3, 15), D(2026, 4, 15)),
    "berlin-0230-october": Case("30 2 * * *", "Europe/Berlin", D(2026, 10, 10), D(2026, 11, 10)),
    "berlin-every-10-min-march": Case(
        "*/10 * * * *", "Europe/Berlin", D(2026, 3, 28), D(2026, 3, 30)
    ),
    "berlin-every-10-min-october": Case(
        "*/10 * * * *", "Europe/Berlin", D(2026, 10, 24), D(2026, 10, 26)
    ),
    "new-york-hourly-november": Case(
        "@hourly", "America/New_York", D(2026, 10, 31), D(2026, 11, 3)
    ),
    "lord-howe-half-hour-dst": Case(
        "*/15 1-3 * * *", "Australia/Lord_Howe", D(2026, 4, 1), D(2026, 10, 10)
    ),
    "1st-and-15th": Case("0 0 1,15 * *", "UTC", D(2026, 1, 1), None),
    "sunday-name": Case("0 12 * * SUN", "Europe/Paris", D(2026, 1, 1), None),
    "sunday-as-7": Case("0 12 * * 7", "Europe/Paris", D(2026, 1, 1), None),
    "day-or-13th-or-friday": Case("0 0 13 * 5", "Europe/Paris", D(2026, 1, 1), None),
    "day-or-odd-days-or-monday": Case("0 6 */2 * 1", "UTC", D(2026, 1, 1), None),
    "day-or-impossible-dom": Case("0 0 31 2 5", "UTC", D(2026, 1, 1), None, 50),
    "month-names": Case("0 0 * JAN-MAR,oct *", "UTC", D(2026, 1, 1), None),
    "range-with-step": Case("5-50/10 1-23/4 * * *", "Europe/Paris", D(2026, 1, 1), None),
    "start-with-step": Case("10/15 * * * *", "UTC", D(2026, 5, 5, 5, 5), None),
    "wrapping-dow-range": Case("0 0 * * 5-1", "UTC", D(2026, 1, 1), None),
    "leap-day": Case("0 0 29 2 *", "UTC", D(2026, 1, 1), D(2036, 1, 1)),
    "question-mark": Case("0 0 13 * ?", "UTC", D(2026, 1, 1), None, 24),
    "daily": Case("@daily", "Europe/Berlin", D(2026, 1, 1), None),
    "weekly": Case("@weekly", "UTC", D(2026, 1, 1), None),
    "monthly": Case("@monthly", "UTC", D(2026, 1, 1), None, 36),
    "yearly": Case("@yearly", "UTC", D(2026, 1, 1), None, 10),
    "seconds-6-field": Case("* * * * * */20", "UTC", D(2026, 1, 1, 0, 0, 30), None),
    "seconds-with-minutes": Case("*/15 9 * * 1 30", "UTC", D(2026, 1, 1), None),
    "seconds-7-field-any-year": Case("0 0 * * * 0 *", "UTC", D(2026, 1, 1), None),
    "window-mid-second": Case(
        "* * * * * *", "UTC", D(2026, 1, 1, 0, 0, 0, 500), D(2026, 1, 1, 0, 2, 59, 9)
    ),
}


def _cron_walls(case: Case) -> list[datetime.datetime]:
    """Naive local fire times of the cron expression inside the case's window."""
    it = croniter(case.expr, case.start - datetime.timedelta(seconds=1))
    walls: list[datetime.datetime] = []
    while len(walls) < (10_000 if case.until else case.limit):
        wall = it.get_next(datetime.datetime)
        if case.until is not None and wall > case.until:
            break
        if wall >= case.start:
            walls.append(wall)
    return walls


def _rrule_walls(rrule: str, cutoff: datetime.datetime) -> list[datetime.datetime]:
    """Naive local times the RRULE string yields, up to ``cutoff``."""
    parsed = dateutil.rrule.rrulestr(rrule, cache=True)
    return list(parsed.between(D(1970, 1, 1), cutoff, inc=True))


def _rrule_policy(wall: datetime.datetime, tz: str) -> datetime.datetime:
    """Where Prefect's RRuleSchedule runs a wall time: dateutil's time zone rules.

    Like fold=0 except inside a spring-forward gap, where dateutil applies the offset
    after the transition (fold=1), i.e. the run moves *earlier* by the gap.
    """
    zone = ZoneInfo(tz)
    local = wall.replace(tzinfo=zone)
    exists = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
    return (local if exists else local.replace(fold=1)).astimezone(UTC)


def _cron_policy(wall: datetime.datetime, tz: str) -> datetime.datetime:
    """Where Prefect's CronSchedule runs a wall time: fold=0 (gap times move later)."""
    return wall.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


def _prefect_rrule_instants(
    rrule: str, tz: str, cutoff: datetime.datetime
) -> list[datetime.datetime]:
    """Instants from the RRULE localized exactly as Prefect does (``to_rrule``)."""
    localized = RRuleSchedule(rrule=rrule, timezone=tz).to_rrule()
    instants: list[datetime.datetime] = []
    for occurrence in localized:
        if occurrence.replace(tzinfo=None) > cutoff:
            break
        instant = occurrence.astimezone(UTC)
        if instant not in instants:
            instants.append(instant)
    return instants


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_wall_clock_times_match_croniter(case: Case) -> None:
    rrule = cron_to_rrule(case.expr, dtstart=case.start, until=case.until)
    walls = _cron_walls(case)
    assert walls, "every case must fire at least once"
    rrule_walls = _rrule_walls(rrule, walls[-1] if case.until is None else case.until)
    assert rrule_walls == walls
    assert rrule_walls[0] >= case.start
    if case.until is not None:
        assert rrule_walls[-1] <= case.until


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_localized_instants_match_croniter(case: Case) -> None:
    rrule = cron_to_rrule(case.expr, dtstart=case.start, until=case.until)
    walls = _cron_walls(case)
    cutoff = walls[-1] if case.until is None else case.until
    expected = sorted({_rrule_policy(wall, case.tz) for wall in walls})
    actual = _prefect_rrule_instants(rrule, case.tz, cutoff)
    assert sorted(actual) == expected
    # Away from spring-forward gaps that is exactly CronSchedule's policy too.
    if all(_rrule_policy(w, case.tz) == _cron_policy(w, case.tz) for w in walls):
        assert expected == sorted({_cron_policy(wall, case.tz) for wall in walls})
    start = _cron_policy(case.start, case.tz)
    assert min(actual) >= start
    if case.until is not None:
        assert max(actual) <= _cron_policy(case.until, case.tz)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_prefect_accepts_the_rrule(case: Case) -> None:
    rrule = cron_to_rrule(case.expr, dtstart=case.start, until=case.until)
    ClientRRuleSchedule(rrule=rrule, timezone="Europe/Paris")
    RRuleSchedule(rrule=rrule, timezone=case.tz)


def _server_dates(
    schedule: CronSchedule | RRuleSchedule,
    start: datetime.datetime,
    end: datetime.datetime,
) -> list[datetime.datetime]:
    dates = asyncio.run(schedule.get_dates(n=1000, start=start, end=end))
    return [date.astimezone(UTC) for date in dates]


@pytest.mark.parametrize(
    "name",
    [
        "weekdays-9am",
        "berlin-0230-october",
        "berlin-every-10-min-march",
        "berlin-every-10-min-october",
        "new-york-hourly-november",
        "day-or-13th-or-friday",
        "month-names",
        "seconds-with-minutes",
    ],
)
def test_server_schedule_matches_cron_schedule(name: str) -> None:
    case = CASES[name]
    zone = ZoneInfo(case.tz)
    until = case.until or _cron_walls(case)[-1]
    start, end = case.start.replace(tzinfo=zone), until.replace(tzinfo=zone)
    rrule = cron_to_rrule(case.expr, dtstart=case.start, until=case.until)
    from_rrule = _server_dates(RRuleSchedule(rrule=rrule, timezone=case.tz), start, end)
    from_cron = _server_dates(CronSchedule(cron=case.expr, timezone=case.tz), start, end)
    assert from_rrule == from_cron
    # Asking beyond the window (past UNTIL, when set) yields nothing outside it.
    beyond = datetime.timedelta(days=30 if case.until else 0)
    wide = _server_dates(
        RRuleSchedule(rrule=rrule, timezone=case.tz),
        start - datetime.timedelta(days=30),
        end + beyond,
    )
    assert wide == from_cron


def test_spring_forward_gap_runs_earlier_than_cron_schedule() -> None:
    """Documented difference: a nonexistent 02:30 runs at 01:30 CET, not 03:30 CEST.

    dateutil resolves a wall time in the gap with the post-transition offset, Prefect's
    CronSchedule with the pre-transition one; the RRULE cannot pick the zone's policy.
    """
    zone = ZoneInfo("Europe/Berlin")
    start, end = D(2026, 3, 28, tzinfo=zone), D(2026, 3, 31, tzinfo=zone)
    rrule = cron_to_rrule("30 2 * * *", dtstart=D(2026, 3, 28), until=D(2026, 3, 31))
    from_rrule = asyncio.run(
        RRuleSchedule(rrule=rrule, timezone="Europe/Berlin").get_dates(n=10, start=start, end=end)
    )
    from_cron = asyncio.run(
        CronSchedule(cron="30 2 * * *", timezone="Europe/Berlin").get_dates(
            n=10, start=start, end=end
        )
    )
    assert [d.astimezone(zone).isoformat() for d in from_rrule] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-30T02:30:00+02:00",
    ]
    assert [d.astimezone(zone).isoformat() for d in from_cron] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_spring_forward_gap_can_precede_a_window_starting_just_before_it() -> None:
    """Documented corner: window start 01:45 on the gap day, 02:30 run lands at 01:30.

    dateutil compares DTSTART in wall-clock time (02:30 >= 01:45) before the zone maps
    the nonexistent 02:30 to 01:30 CET.
    """
    zone = ZoneInfo("Europe/Berlin")
    rrule = cron_to_rrule("30 2 * * *", dtstart=D(2026, 3, 29, 1, 45), until=D(2026, 3, 29, 23))
    dates = asyncio.run(
        RRuleSchedule(rrule=rrule, timezone="Europe/Berlin").get_dates(
            n=10, start=D(2026, 3, 29, tzinfo=zone), end=D(2026, 3, 30, tzinfo=zone)
        )
    )
    assert [d.astimezone(zone).isoformat() for d in dates] == ["2026-03-29T01:30:00+01:00"]


def test_fall_back_repeated_hour_runs_once_like_cron_schedule() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start, end = D(2026, 10, 25, 1, tzinfo=zone), D(2026, 10, 25, 4, tzinfo=zone)
    rrule = cron_to_rrule("*/30 * * * *", dtstart=D(2026, 10, 25), until=None)
    from_rrule = asyncio.run(
        RRuleSchedule(rrule=rrule, timezone="Europe/Berlin").get_dates(n=100, start=start, end=end)
    )
    from_cron = asyncio.run(
        CronSchedule(cron="*/30 * * * *", timezone="Europe/Berlin").get_dates(
            n=100, start=start, end=end
        )
    )
    assert [d.astimezone(zone).isoformat() for d in from_rrule] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:30:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]
    assert [d.astimezone(UTC) for d in from_rrule] == [d.astimezone(UTC) for d in from_cron]


def test_output_format() -> None:
    rrule = cron_to_rrule("0 9 * * 1-5", dtstart=D(2026, 11, 27, 8, 15), until=D(2026, 12, 31, 18))
    assert rrule == (
        "DTSTART:20261127T081500\n"
        "RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0;"
        "UNTIL=20261231T180000"
    )
    every_hour = ",".join(str(hour) for hour in range(24))
    assert cron_to_rrule("0 * * * *", dtstart=D(2026, 1, 1), until=None) == (
        f"DTSTART:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR={every_hour};BYMINUTE=0;BYSECOND=0"
    )


def test_window_start_is_rounded_up_to_the_second() -> None:
    rrule = cron_to_rrule("* * * * *", dtstart=D(2026, 1, 1, 10, 0, 30, 1), until=None)
    assert rrule.startswith("DTSTART:20260101T100031\n")
    first = dateutil.rrule.rrulestr(rrule, cache=True)[0]
    assert first == D(2026, 1, 1, 10, 1)


def test_day_or_is_an_rruleset_without_duplicates() -> None:
    rrule = cron_to_rrule("0 0 13 * 5", dtstart=D(2026, 2, 1), until=D(2026, 3, 31))
    assert rrule.count("RRULE:") == 2
    parsed = dateutil.rrule.rrulestr(rrule, cache=True)
    assert isinstance(parsed, dateutil.rrule.rruleset)
    dates = list(parsed)
    assert len(dates) == len(set(dates))
    # 2026-02-13 and 2026-03-13 are Fridays: matched by both lines, yielded once.
    assert dates.count(D(2026, 2, 13)) == 1
    assert dates.count(D(2026, 3, 13)) == 1


def test_every_second_fits_prefect_length_limit() -> None:
    rrule = cron_to_rrule("* * * * * *", dtstart=D(2026, 1, 1), until=None)
    ClientRRuleSchedule(rrule=rrule, timezone="UTC")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 L * *", "'L'"),
        ("0 0 l * *", "'L'"),
        ("0 0 * * L5", "'L'"),
        ("0 0 * * 5L", "'L'"),
        ("0 0 15W * *", "'W'"),
        ("0 0 LW * *", "'L'"),
        ("0 0 * * 5#2", "'#'"),
        ("0 0 * * fri#3", "'#'"),
        ("R * * * *", "'R'"),
        ("0 R/2 * * *", "'R'"),
        ("H * * * *", "'H'"),
        ("H(0-29) * * * *", "'H'"),
        ("0 0 * * * * 2030", "year"),
    ],
)
def test_features_without_rrule_equivalent_are_rejected(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match="cannot be combined with a schedule start/end"):
        cron_to_rrule(expr, dtstart=D(2026, 1, 1), until=None)
    with pytest.raises(ValueError, match=message):
        cron_to_rrule(expr, dtstart=D(2026, 1, 1), until=None)


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "bad",
        "* * * *",
        "* * * * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "0 0 * JANX *",
        "0 0 * * MONDAY",
        "*/0 * * * *",
        "0 0 1? * *",
        "? * * * *",
        "@reboot",
        "@every",
        "0 0 31 2 *",
        "0 0 30,31 2 *",
        "0 0 31 APR,JUN *",
        "0 0 * * * 60",
        "0 0 % * *",
    ],
)
def test_invalid_expressions_are_rejected(expr: str) -> None:
    with pytest.raises(ValueError):
        cron_to_rrule(expr, dtstart=D(2026, 1, 1), until=None)


def test_bad_windows_are_rejected() -> None:
    aware = D(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        cron_to_rrule("* * * * *", dtstart=aware, until=None)
    with pytest.raises(ValueError, match="naive"):
        cron_to_rrule("* * * * *", dtstart=D(2026, 1, 1), until=aware)
    with pytest.raises(ValueError, match="before its start"):
        cron_to_rrule("* * * * *", dtstart=D(2026, 1, 2), until=D(2026, 1, 1))
