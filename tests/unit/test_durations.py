"""Durations and points in time as people type them."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from taskscheduler import durations

UTC = dt.UTC
NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
td = dt.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", td(seconds=30)),
        ("5m", td(minutes=5)),
        ("1h30m", td(hours=1, minutes=30)),
        ("2d", td(days=2)),
        ("1w", td(weeks=1)),
        ("250ms", td(milliseconds=250)),
        ("1m30s", td(seconds=90)),
        ("1.5h", td(minutes=90)),
        ("90", td(seconds=90)),
        ("1.5", td(seconds=1.5)),
        (" 1H 30M ", td(minutes=90)),
    ],
)
def test_parse_duration_reads_unit_text(text: str, expected: dt.timedelta) -> None:
    assert durations.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("number", "expected"), [(90, td(seconds=90)), (1.5, td(seconds=1.5)), (0, td())]
)
def test_parse_duration_reads_numbers_as_seconds(number: float, expected: td) -> None:
    assert durations.parse_duration(number) == expected


@pytest.mark.parametrize(
    "value", ["soon", "", "5x", "m5", "-5s", "PT5M", "01:30:00", True, None, [1]]
)
def test_parse_duration_returns_what_it_cannot_read_unchanged(value: Any) -> None:
    assert durations.parse_duration(value) is value


def test_parse_duration_passes_timedeltas_through() -> None:
    value = td(minutes=3)
    assert durations.parse_duration(value) is value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (td(seconds=30), "30s"),
        (td(minutes=5), "5m"),
        (td(hours=1, minutes=30), "1h30m"),
        (td(days=1, seconds=1), "1d1s"),
        (td(weeks=2), "14d"),
        (td(seconds=1.5), "1.5s"),
        (td(), "0s"),
    ],
)
def test_format_duration_writes_the_shortest_unit_text(value: td, text: str) -> None:
    assert durations.format_duration(value) == text


@pytest.mark.parametrize(
    "value",
    [
        td(seconds=1),
        td(seconds=59),
        td(seconds=61),
        td(hours=25, seconds=7),
        td(seconds=2.25),
    ],
)
def test_format_duration_round_trips_through_parse_duration(value: td) -> None:
    assert durations.parse_duration(durations.format_duration(value)) == value


@pytest.mark.parametrize("seconds", [1234.125, 3600.001])
def test_format_duration_keeps_fractional_seconds_of_long_durations(
    seconds: float,
) -> None:
    value = td(seconds=seconds)
    assert durations.parse_duration(durations.format_duration(value)) == value


def test_parse_when_now_is_now() -> None:
    assert durations.parse_when("now", now=NOW) == NOW
    assert durations.parse_when(" NOW ", now=NOW) == NOW


@pytest.mark.parametrize(
    ("text", "offset"),
    [("+30s", td(seconds=30)), ("+2h", td(hours=2)), ("+1h30m", td(minutes=90))],
)
def test_parse_when_offset_counts_from_now(text: str, offset: td) -> None:
    assert durations.parse_when(text, now=NOW) == NOW + offset


def test_parse_when_without_now_uses_the_current_time() -> None:
    before = dt.datetime.now(UTC)
    when = durations.parse_when("+1h")
    after = dt.datetime.now(UTC)
    assert before + td(hours=1) <= when <= after + td(hours=1)


def test_parse_when_reads_iso_with_z_as_utc() -> None:
    when = durations.parse_when("2026-06-01T09:00:00Z", now=NOW)
    assert when == dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert when.utcoffset() == td()


def test_parse_when_keeps_an_explicit_offset() -> None:
    when = durations.parse_when("2026-06-01T09:00:00+02:00", zone=ZoneInfo("Asia/Tokyo"))
    assert when == dt.datetime(2026, 6, 1, 7, 0, tzinfo=UTC)


def test_parse_when_reads_naive_iso_in_the_given_zone() -> None:
    when = durations.parse_when("2026-06-01T09:00:00", zone=ZoneInfo("Europe/Paris"))
    assert when.astimezone(UTC) == dt.datetime(2026, 6, 1, 7, 0, tzinfo=UTC)


def test_parse_when_reads_naive_iso_in_utc_by_default() -> None:
    when = durations.parse_when("2026-06-01T09:00:00")
    assert when == dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01T00:00:00", ""])
def test_parse_when_refuses_garbage_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601") as info:
        durations.parse_when(text, now=NOW)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["+soon", "+", "+5x"])
def test_parse_when_refuses_an_unreadable_offset(text: str) -> None:
    with pytest.raises(ValueError, match=r"offset like \+30s") as info:
        durations.parse_when(text, now=NOW)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("America/New_York", "2026-12-01 09:00:00 EST (14:00:00Z)"),
        ("Europe/Berlin", "2026-12-01 15:00:00 CET (14:00:00Z)"),
        ("Asia/Kolkata", "2026-12-01 19:30:00 IST (14:00:00Z)"),
        ("UTC", "2026-12-01 14:00:00Z"),
    ],
)
def test_a_tasks_time_is_shown_on_its_zones_clock_with_utc_beside(zone: str, shown: str) -> None:
    instant = dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)
    assert durations.beside_utc(instant, zone) == shown
    # The same instant from another zone's datetime reads the same.
    assert durations.beside_utc(instant.astimezone(ZoneInfo("Asia/Tokyo")), zone) == shown


def test_a_task_names_its_zone_in_its_json_and_times_stay_utc() -> None:
    from taskscheduler import models

    spec = models.build_spec(
        {"name": "ny", "code": "def main():\n    pass\n", "cron": "0 9 * * *",
         "timezone": "America/New_York"}
    )  # fmt: skip
    task = models.Task(
        id="d", deployment_id="d", name="ny", flow="run-task", managed=True, spec=spec,
        schedule="0 9 * * *", paused=False, pool="process", tags=[],
        next_runs=[dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)],
    )  # fmt: skip
    data = task.model_dump(mode="json")
    assert data["timezone"] == "America/New_York"
    assert data["next_runs"] == ["2026-12-01T14:00:00Z"]
    assert models.Task.model_validate(data).timezone == "America/New_York"  # read back
