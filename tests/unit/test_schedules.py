"""Schedule plans: what Prefect is told for each kind, with and without a window."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time

import pytest
from prefect.client.schemas.schedules import RRuleSchedule as ClientRRuleSchedule
from prefect.server.schemas.schedules import RRuleSchedule as ServerRRuleSchedule

from taskscheduler import errors, schedules

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
START = dt.datetime(2026, 3, 10, 6, 30, 15, tzinfo=UTC)
END = dt.datetime(2026, 4, 10, 18, 0, 0, tzinfo=UTC)


def plan(
    kind: schedules.Kind,
    expression: str,
    *,
    timezone: str = "UTC",
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime = NOW,
) -> schedules.Plan:
    return schedules.plan(kind, expression, timezone=timezone, start=start, end=end, now=now)


def rrule_lines(p: schedules.Plan) -> list[str]:
    assert p.rrule is not None
    return p.rrule.splitlines()


def test_only_one_field_of_a_plan_is_set() -> None:
    for p in (
        plan("cron", "0 9 * * *"),
        plan("every", "5m"),
        plan("at", "2026-05-01T09:00:00"),
        plan("cron", "0 9 * * *", start=START),
    ):
        assert sum(v is not None for v in (p.cron, p.interval, p.rrule)) == 1


# --- cron -----------------------------------------------------------------------------


def test_cron_without_window_is_a_prefect_cron() -> None:
    p = plan("cron", "0 9 * * 1-5", timezone="Europe/Paris")
    assert (p.kind, p.cron, p.timezone) == ("cron", "0 9 * * 1-5", "Europe/Paris")
    assert p.rrule is None


def test_cron_with_window_is_an_rrule_starting_at_the_window_start() -> None:
    p = plan("cron", "*/15 * * * *", timezone="Europe/Paris", start=START, end=END)
    assert p.cron is None
    # 06:30:15 UTC is 07:30:15 in Paris (CET); DTSTART is naive wall-clock time.
    assert rrule_lines(p)[0] == "DTSTART:20260310T073015"
    assert p.timezone == "Europe/Paris"


def test_cron_with_window_never_fires_outside_it() -> None:
    p = plan("cron", "*/15 * * * *", timezone="Europe/Paris", start=START, end=END)
    times = schedules.preview(p, 5000, after=START - dt.timedelta(days=30))
    assert times[0] == dt.datetime(2026, 3, 10, 6, 45, tzinfo=UTC)
    assert times[-1] == END
    assert all(START <= t <= END for t in times)


def test_cron_with_only_an_end_starts_now() -> None:
    p = plan("cron", "0 * * * *", end=END)
    assert rrule_lines(p)[0] == "DTSTART:20260301T120000"
    times = schedules.preview(p, 2, after=NOW - dt.timedelta(days=1))
    assert times[0] == NOW


def test_cron_with_window_that_uses_unsupported_features_is_refused_naming_cron() -> None:
    with pytest.raises(errors.InvalidSchedule) as info:
        plan("cron", "0 9 L * *", start=START)
    assert info.value.field == "cron"


# --- interval ------------------------------------------------------------------------


def test_interval_without_window_is_a_prefect_interval_in_seconds() -> None:
    p = plan("every", "1h30m")
    assert p.interval == 5400.0
    assert p.rrule is None and p.cron is None


@pytest.mark.parametrize(
    ("every", "seconds", "rule"),
    [
        ("45s", 45, "FREQ=SECONDLY;INTERVAL=45"),
        ("90s", 90, "FREQ=SECONDLY;INTERVAL=90"),
        ("5m", 300, "FREQ=MINUTELY;INTERVAL=5"),
        ("2h", 7200, "FREQ=HOURLY;INTERVAL=2"),
        ("2d", 172800, "FREQ=DAILY;INTERVAL=2"),
    ],
)
def test_interval_with_window_is_a_utc_rrule_stepping_by_the_interval(
    every: str, seconds: int, rule: str
) -> None:
    p = plan("every", every, timezone="Europe/Paris", start=START, end=END)
    assert p.timezone == "UTC"
    lines = rrule_lines(p)
    assert lines[0] == "DTSTART:20260310T063015"
    assert lines[1] == f"RRULE:{rule};UNTIL=20260410T180000"
    times = schedules.preview(p, 20, after=START - dt.timedelta(seconds=1))
    assert times[0] == START
    steps = {b - a for a, b in itertools.pairwise(times)}
    assert steps == {dt.timedelta(seconds=seconds)}


def test_interval_with_window_stops_at_the_end() -> None:
    p = plan("every", "1d", start=START, end=END)
    times = schedules.preview(p, 100, after=START - dt.timedelta(seconds=1))
    assert len(times) == 32
    assert all(START <= t <= END for t in times)


def test_interval_with_window_rounds_a_fractional_start_up_never_firing_before_it() -> None:
    p = plan("every", "1m", start=START.replace(microsecond=500), end=END)
    assert rrule_lines(p)[0] == "DTSTART:20260310T063016"
    assert rrule_lines(plan("every", "1m", start=START, end=END))[0] == "DTSTART:20260310T063015"


def test_rrule_with_a_fractional_start_begins_at_the_next_whole_second() -> None:
    p = plan("rrule", "FREQ=HOURLY", timezone="UTC", start=START.replace(microsecond=1), end=None)
    assert rrule_lines(p)[0] == "DTSTART:20260310T063016"


def test_fractional_interval_with_window_is_refused_naming_every() -> None:
    with pytest.raises(errors.InvalidSchedule) as info:
        plan("every", "1.5s", start=START, end=END)
    assert info.value.field == "every"


def test_interval_preview_counts_from_the_round_anchor() -> None:
    p = plan("every", "5m")
    after = dt.datetime(2026, 3, 1, 12, 3, 17, tzinfo=UTC)
    assert schedules.preview(p, 2, after=after) == [
        dt.datetime(2026, 3, 1, 12, 5, tzinfo=UTC),
        dt.datetime(2026, 3, 1, 12, 10, tzinfo=UTC),
    ]


# --- at -------------------------------------------------------------------------------


def test_at_is_a_single_occurrence_rule_at_that_time() -> None:
    at = dt.datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    p = plan("at", at.isoformat(), timezone="Europe/Paris")
    lines = rrule_lines(p)
    assert lines[0] == "DTSTART:20260701T110000"
    assert "COUNT=1" in lines[1]
    assert schedules.preview(p, 5, after=NOW) == [at]


# --- rrule ----------------------------------------------------------------------------


def test_rrule_without_dtstart_starts_now_in_local_time() -> None:
    p = plan("rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0", timezone="Asia/Tokyo")
    assert rrule_lines(p) == [
        "DTSTART:20260301T210000",
        "RRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
    ]


def test_rrule_dtstart_in_utc_is_converted_to_local_wall_time() -> None:
    p = plan(
        "rrule",
        "DTSTART:20260601T070000Z\nRRULE:FREQ=DAILY",
        timezone="Europe/Berlin",
    )
    assert rrule_lines(p)[0] == "DTSTART:20260601T090000"


def test_rrule_dtstart_with_tzid_is_converted_to_local_wall_time() -> None:
    p = plan(
        "rrule",
        "DTSTART;TZID=America/New_York:20260601T090000\nRRULE:FREQ=DAILY",
        timezone="Europe/Berlin",
    )
    assert rrule_lines(p)[0] == "DTSTART:20260601T150000"


def test_rrule_naive_dtstart_is_kept_as_wall_time() -> None:
    p = plan("rrule", "DTSTART:20260601T090000\nRRULE:FREQ=DAILY", timezone="Europe/Berlin")
    assert rrule_lines(p) == ["DTSTART:20260601T090000", "RRULE:FREQ=DAILY"]


def test_rrule_with_count_and_end_is_refused() -> None:
    with pytest.raises(errors.InvalidSchedule) as info:
        plan("rrule", "FREQ=DAILY;COUNT=3", end=END)
    assert info.value.field == "rrule"
    assert "COUNT" in str(info.value)


def test_rrule_with_count_and_no_end_is_accepted() -> None:
    p = plan("rrule", "RRULE:FREQ=DAILY;COUNT=3", start=START)
    assert len(schedules.preview(p, 10, after=NOW)) == 3


def test_rrule_dtstart_before_start_is_refused() -> None:
    with pytest.raises(errors.InvalidSchedule) as info:
        plan("rrule", "DTSTART:20260301T000000\nRRULE:FREQ=DAILY", start=START)
    assert info.value.field == "rrule"


def test_rrule_dtstart_after_start_is_kept() -> None:
    p = plan("rrule", "DTSTART:20260320T000000\nRRULE:FREQ=DAILY", start=START)
    assert rrule_lines(p)[0] == "DTSTART:20260320T000000"


def test_rrule_without_dtstart_starts_at_the_window_start() -> None:
    p = plan("rrule", "FREQ=HOURLY", timezone="Europe/Paris", start=START)
    assert rrule_lines(p)[0] == "DTSTART:20260310T073015"


def test_rrule_until_later_than_end_is_clamped_to_end() -> None:
    p = plan("rrule", "FREQ=DAILY;UNTIL=20270101T000000Z", timezone="Europe/Paris", end=END)
    # END is 18:00 UTC, 20:00 in Paris (CEST).
    assert rrule_lines(p)[1] == "RRULE:FREQ=DAILY;UNTIL=20260410T200000"


def test_rrule_until_earlier_than_end_is_kept_as_local_time() -> None:
    p = plan("rrule", "FREQ=DAILY;UNTIL=20260401T000000Z", timezone="Europe/Paris", end=END)
    assert rrule_lines(p)[1] == "RRULE:FREQ=DAILY;UNTIL=20260401T020000"


def test_rrule_gets_the_end_as_until() -> None:
    p = plan("rrule", "FREQ=DAILY", end=END)
    assert rrule_lines(p)[1] == "RRULE:FREQ=DAILY;UNTIL=20260410T180000"


@pytest.mark.parametrize(
    "text",
    [
        "RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY",
        "RRULE:FREQ=DAILY\nEXDATE:20260601T090000",
        "RDATE:20260601T090000",
        "DTSTART:20260601T090000",
        "FREQ=DAILY;BYHOUR=25",
        "FREQ=DAILY;INTERVAL",
    ],
)
def test_unsupported_or_invalid_rrule_is_refused_naming_rrule(text: str) -> None:
    with pytest.raises(errors.InvalidSchedule) as info:
        schedules.validate("rrule", text, "UTC")
    assert info.value.field == "rrule"


# --- DST ------------------------------------------------------------------------------


def test_cron_preview_keeps_wall_clock_time_across_spring_forward() -> None:
    p = plan("cron", "0 9 * * *", timezone="Europe/Berlin")
    times = schedules.preview(p, 4, after=dt.datetime(2026, 3, 27, 12, tzinfo=UTC))
    assert times == [
        dt.datetime(2026, 3, 28, 8, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 31, 7, 0, tzinfo=UTC),
    ]


def test_windowed_cron_preview_keeps_wall_clock_time_across_spring_forward() -> None:
    p = plan(
        "cron",
        "0 9 * * *",
        timezone="Europe/Berlin",
        start=dt.datetime(2026, 3, 27, tzinfo=UTC),
        end=dt.datetime(2026, 4, 1, tzinfo=UTC),
    )
    times = schedules.preview(p, 10, after=dt.datetime(2026, 3, 27, tzinfo=UTC))
    assert [t.hour for t in times] == [8, 8, 7, 7, 7]


# --- agreement with Prefect ------------------------------------------------------------


def _prefect_dates(p: schedules.Plan, n: int) -> list[dt.datetime]:
    assert p.rrule is not None
    schedule = ServerRRuleSchedule(rrule=p.rrule, timezone=p.timezone)
    dates = asyncio.run(
        schedule.get_dates(
            n=n,
            start=dt.datetime(2026, 1, 1, tzinfo=UTC),
            end=dt.datetime(2027, 1, 1, tzinfo=UTC),
        )
    )
    return [d.astimezone(UTC) for d in dates]


PLANS = {
    "windowed-cron": lambda: plan(
        "cron", "0 9 * * 1-5", timezone="Europe/Berlin", start=START, end=END
    ),
    "windowed-cron-day-or": lambda: plan(
        "cron", "30 8 13 * 5", timezone="America/New_York", start=START, end=END
    ),
    "windowed-interval": lambda: plan("every", "7h", start=START, end=END),
    "interval-with-end-only": lambda: plan("every", "90m", end=END),
    "at": lambda: plan("at", "2026-07-01T09:00:00+00:00", timezone="Europe/Paris"),
    "rrule-with-window": lambda: plan(
        "rrule", "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=10", timezone="Europe/Paris", end=END
    ),
}


@pytest.mark.parametrize("name", PLANS)
def test_prefect_accepts_the_planned_rrule(name: str) -> None:
    p = PLANS[name]()
    assert p.rrule is not None
    ClientRRuleSchedule(rrule=p.rrule, timezone=p.timezone)


@pytest.mark.parametrize("name", PLANS)
def test_prefect_server_dates_agree_with_preview(name: str) -> None:
    p = PLANS[name]()
    expected = schedules.preview(p, 200, after=dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert expected  # a plan that never fires would prove nothing
    assert _prefect_dates(p, 200) == expected


def test_preview_agrees_with_prefect_inside_the_dst_gap() -> None:
    p = plan(
        "cron",
        "30 2 * * *",
        timezone="Europe/Berlin",
        start=dt.datetime(2026, 3, 27, tzinfo=UTC),
        end=dt.datetime(2026, 4, 1, tzinfo=UTC),
    )
    expected = schedules.preview(p, 10, after=dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert _prefect_dates(p, 10) == expected


def test_preview_across_the_dst_gap_is_increasing_without_duplicates() -> None:
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    end = dt.datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    p = plan("cron", "*/15 * * * *", timezone="Europe/Paris", start=start, end=end)
    times = schedules.preview(p, 100, after=start - dt.timedelta(seconds=1))
    assert times == sorted(set(times))
    assert len(times) == 9


# --- describe ---------------------------------------------------------------------------


def test_describe_names_the_kind_of_prefect_schedule() -> None:
    assert plan("cron", "0 9 * * *", timezone="Europe/Paris").describe() == (
        "cron 0 9 * * * (Europe/Paris)"
    )
    assert plan("every", "90m").describe() == "every 1:30:00"
    assert plan("at", "2026-07-01T09:00:00").describe().startswith("rrule DTSTART:")


# --- a schedule must fire -------------------------------------------------------------------


def fires_refusal(
    kind: schedules.Kind,
    expression: str,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    timezone: str = "UTC",
) -> errors.InvalidSchedule:
    schedules.validate(kind, expression, timezone)
    with pytest.raises(errors.InvalidSchedule) as info:
        schedules.check_fires(kind, expression, timezone, start=start, end=end)
    return info.value


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "* * 31 4,6,9,11 *"])
def test_cron_without_a_matching_date_never_fires_and_is_refused_naming_cron(cron: str) -> None:
    error = fires_refusal("cron", cron)
    assert error.field == "cron"
    assert "never fires" in error.reason


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 29 2 *",  # leap years only
        "0 0 31 2 1",  # day of month or day of week: every Monday of February
        "0 0 * 2 5#5",  # a fifth Friday in February: 2008, 2036, ...
        "0 0 L 2 *",
        "@yearly",
    ],
)
def test_cron_that_fires_however_rarely_is_accepted(cron: str) -> None:
    schedules.validate("cron", cron, "UTC")
    schedules.check_fires("cron", cron, "UTC", start=None, end=None)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4,6,9,11",
        "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",  # from 2000-01-01, a Saturday: only Saturdays
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6",
    ],
)
def test_rrule_with_no_occurrence_is_refused_naming_rrule(rule: str) -> None:
    error = fires_refusal("rrule", rule)
    assert error.field == "rrule"
    assert "never fires" in error.reason


def test_rrule_that_never_fires_is_refused_in_bounded_time() -> None:
    """dateutil alone searches such a rule to the year 9999: over a minute for this one."""
    started = time.monotonic()
    error = fires_refusal("rrule", "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30;BYHOUR=1,2,3")
    assert "never fires" in error.reason
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("kind", "expression"),
    [("cron", "0 0 29 2 *"), ("rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29")],
)
def test_a_window_without_an_occurrence_is_refused_naming_the_schedule(
    kind: schedules.Kind, expression: str
) -> None:
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    end = dt.datetime(2027, 12, 31, tzinfo=UTC)
    error = fires_refusal(kind, expression, start=start, end=end)
    assert error.field == kind
    assert "between start" in error.reason
    # The same schedule over a window holding 29 February 2028 is fine.
    schedules.check_fires(kind, expression, "UTC", start=start, end=end.replace(year=2028, month=3))


def test_a_window_shorter_than_the_gap_between_runs_is_refused() -> None:
    """09:00 daily, in a window from 10:00 to 11:00 of one day."""
    start = dt.datetime(2026, 6, 1, 10, tzinfo=UTC)
    end = dt.datetime(2026, 6, 1, 11, tzinfo=UTC)
    for kind, expression in (("cron", "0 9 * * *"), ("rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0")):
        assert fires_refusal(kind, expression, start=start, end=end).field == kind


def test_the_window_is_read_in_the_schedules_time_zone() -> None:
    """09:00 in Tokyo is 00:00 UTC: inside a window from 23:30 to 00:30 UTC."""
    start = dt.datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    end = dt.datetime(2026, 6, 2, 0, 30, tzinfo=UTC)
    for kind, expression in (("cron", "0 9 * * *"), ("rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0")):
        schedules.check_fires(kind, expression, "Asia/Tokyo", start=start, end=end)
        assert fires_refusal(kind, expression, start=start, end=end).field == kind


def test_rrule_until_before_its_first_run_is_refused() -> None:
    error = fires_refusal(
        "rrule", "DTSTART:20260601T000000\nRRULE:FREQ=YEARLY;UNTIL=20260501T000000"
    )
    assert "UNTIL" in error.reason


def test_a_window_that_has_passed_is_accepted() -> None:
    """The check is on the calendar, not the clock: its runs are in the past."""
    end = dt.datetime(2020, 1, 1, tzinfo=UTC)
    start = dt.datetime(2019, 1, 1, tzinfo=UTC)
    schedules.check_fires("cron", "0 9 * * *", "UTC", start=start, end=end)
    schedules.check_fires("rrule", "FREQ=DAILY", "UTC", start=None, end=end)
    schedules.check_fires("rrule", "FREQ=DAILY;UNTIL=20200101T000000", "UTC", start=None, end=None)


@pytest.mark.parametrize(
    ("rule", "word"),
    [
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;COUNT=0", "COUNT"),
        ("FREQ=YEARLY;BYEASTER=0", "BYEASTER"),
        ("DTSTART:19000101T000000\nRRULE:FREQ=DAILY", "DTSTART"),
    ],
)
def test_rrule_parts_without_a_sane_run_are_refused_naming_rrule(rule: str, word: str) -> None:
    with pytest.raises(errors.InvalidSchedule) as info:
        schedules.validate("rrule", rule, "UTC")
    assert info.value.field == "rrule"
    assert word in info.value.reason
