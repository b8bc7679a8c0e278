"""TaskSpec validation, serialisation and helpers, through ``models.build_spec``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from taskscheduler import errors, models

UTC = dt.UTC
CODE = "def main():\n    return 1\n"


def spec_data(**fields: Any) -> dict[str, Any]:
    """A valid task definition with ``fields`` applied (``None`` removes a key)."""
    data: dict[str, Any] = {"name": "hello", "code": CODE}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def refused(**fields: Any) -> errors.InvalidTask:
    """The error ``build_spec`` raises for the definition."""
    with pytest.raises(errors.InvalidTask) as info:
        models.build_spec(spec_data(**fields))
    return info.value


# --- schedules ------------------------------------------------------------------------


def test_invalid_cron_is_refused_naming_cron() -> None:
    error = refused(cron="61 * * * *")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "cron"
    assert "61 * * * *" in str(error)


def test_cron_that_is_not_five_fields_is_refused_naming_cron() -> None:
    error = refused(cron="every day")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "cron"


def test_six_field_cron_with_seconds_is_refused_pointing_to_every() -> None:
    error = refused(cron="*/10 * * * * *")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "cron"
    assert "every" in error.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cron", "0 0 31 2 *"),
        ("cron", "0 0 30 2 *"),
        ("rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31"),
    ],
)
def test_a_schedule_that_never_fires_is_refused_naming_its_field(field: str, value: str) -> None:
    error = refused(**{field: value})
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == field and "never fires" in error.reason
    with pytest.raises(errors.InvalidSchedule):
        models.build_schedule({field: value})


def test_a_window_without_a_run_is_refused_naming_the_schedule() -> None:
    error = refused(cron="0 0 29 2 *", start="2026-03-01T00:00:00Z", end="2027-12-31T00:00:00Z")
    assert error.field == "cron"


def test_a_stored_definition_that_never_fires_is_still_read() -> None:
    """Tasks written before the rule stay readable (and so listable, pausable, deletable)."""
    data = spec_data(cron="0 0 31 2 *")
    with pytest.raises(ValueError):
        models.TaskSpec.model_validate(data)
    spec = models.TaskSpec.model_validate(data, context=models.STORED)
    assert spec.cron == "0 0 31 2 *"


def test_cron_alias_is_accepted() -> None:
    assert models.build_spec(spec_data(cron="@daily")).schedule_kind == "cron"


def test_unknown_time_zone_is_refused_naming_timezone() -> None:
    error = refused(timezone="Mars/Olympus_Mons")
    assert error.field == "timezone"
    assert "Mars/Olympus_Mons" in str(error)


def test_interval_below_one_second_is_refused_naming_every() -> None:
    error = refused(every="500ms")
    assert error.field == "every"


def test_interval_of_one_second_is_accepted() -> None:
    spec = models.build_spec(spec_data(every="1s"))
    assert spec.every == dt.timedelta(seconds=1)


def test_interval_text_is_parsed_into_a_duration() -> None:
    spec = models.build_spec(spec_data(every="1h30m"))
    assert spec.every == dt.timedelta(minutes=90)


def test_two_schedule_kinds_are_refused_naming_the_second() -> None:
    error = refused(cron="0 9 * * *", every="5m")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "every"


def test_end_before_start_is_refused_naming_end() -> None:
    error = refused(start="2026-05-02T00:00:00Z", end="2026-05-01T00:00:00Z")
    assert error.field == "end"


def test_end_equal_to_start_is_refused_naming_end() -> None:
    error = refused(start="2026-05-01T00:00:00Z", end="2026-05-01T00:00:00Z")
    assert error.field == "end"


def test_at_before_start_is_refused_naming_at() -> None:
    error = refused(at="2026-04-30T00:00:00Z", start="2026-05-01T00:00:00Z")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "at"


def test_at_after_end_is_refused_naming_at() -> None:
    error = refused(at="2026-06-02T00:00:00Z", end="2026-06-01T00:00:00Z")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "at"


def test_at_inside_window_is_accepted() -> None:
    spec = models.build_spec(
        spec_data(
            at="2026-05-15T00:00:00Z",
            start="2026-05-01T00:00:00Z",
            end="2026-06-01T00:00:00Z",
        )
    )
    assert spec.at == dt.datetime(2026, 5, 15, tzinfo=UTC)


def test_invalid_rrule_is_refused_naming_rrule() -> None:
    error = refused(rrule="RRULE:FREQ=SOMETIMES")
    assert isinstance(error, errors.InvalidSchedule)
    assert error.field == "rrule"


@pytest.mark.parametrize(
    ("field", "value", "utc"),
    [
        ("at", "2026-07-01T09:00:00", dt.datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
        ("start", "2026-01-15T09:00:00", dt.datetime(2026, 1, 15, 8, 0, tzinfo=UTC)),
        ("end", "2026-07-01T09:00:00", dt.datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
    ],
)
def test_naive_times_are_wall_clock_in_the_task_zone(
    field: str, value: str, utc: dt.datetime
) -> None:
    spec = models.build_spec(spec_data(timezone="Europe/Paris", **{field: value}))
    moment = getattr(spec, field)
    assert moment.tzinfo is not None
    assert moment.astimezone(UTC) == utc


def test_aware_times_keep_their_instant_whatever_the_task_zone() -> None:
    spec = models.build_spec(spec_data(timezone="Europe/Paris", at="2026-07-01T09:00:00+00:00"))
    assert spec.at == dt.datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


# --- code and entry function --------------------------------------------------------


def test_syntax_error_in_code_is_refused_with_its_line_number() -> None:
    error = refused(code="import os\n\ndef main(:\n    pass\n")
    assert error.field == "code"
    assert "line 3" in str(error)


def test_code_without_the_entry_function_is_refused_naming_code() -> None:
    error = refused(code="def run():\n    pass\n")
    assert error.field == "code"
    assert "'main'" in str(error)


def test_entry_function_must_be_top_level() -> None:
    error = refused(code="class A:\n    def main(self):\n        pass\n")
    assert error.field == "code"


def test_custom_entry_names_the_function_to_call() -> None:
    spec = models.build_spec(spec_data(code="def run():\n    pass\n", entry="run"))
    assert spec.entry == "run"


def test_custom_entry_missing_from_code_is_refused() -> None:
    error = refused(entry="run")
    assert error.field == "code"
    assert "'run'" in str(error)


def test_async_entry_function_is_accepted() -> None:
    models.build_spec(spec_data(code="async def main():\n    pass\n"))


def test_entry_that_is_not_an_identifier_is_refused_naming_entry() -> None:
    error = refused(entry="not-a-name")
    assert error.field == "entry"


def test_parameter_the_entry_function_does_not_take_is_refused_naming_it() -> None:
    error = refused(code="def main(a):\n    pass\n", parameters={"a": 1, "x": 2})
    assert error.field == "parameters.x"


def test_missing_required_parameter_is_refused_naming_it() -> None:
    error = refused(code="def main(a, b=2):\n    pass\n", parameters={"b": 3})
    assert error.field == "parameters.a"


def test_missing_required_keyword_only_parameter_is_refused_naming_it() -> None:
    error = refused(code="def main(*, k, o=1):\n    pass\n", parameters={})
    assert error.field == "parameters.k"


def test_parameters_with_defaults_may_be_omitted() -> None:
    code = "def main(a, b=2, *, c=3):\n    pass\n"
    spec = models.build_spec(spec_data(code=code, parameters={"a": 1}))
    assert spec.parameters == {"a": 1}


def test_var_keyword_entry_function_accepts_any_parameter() -> None:
    code = "def main(**kwargs):\n    pass\n"
    spec = models.build_spec(spec_data(code=code, parameters={"anything": [1, 2]}))
    assert spec.parameters == {"anything": [1, 2]}


def test_positional_only_parameter_cannot_be_given_by_name() -> None:
    error = refused(code="def main(x, /):\n    pass\n", parameters={"x": 1})
    assert error.field == "parameters.x"


def test_code_and_entrypoint_together_are_refused() -> None:
    error = refused(entrypoint="flows/hello.py:main")
    assert error.field == "code"


def test_neither_code_nor_entrypoint_is_refused() -> None:
    error = refused(code=None)
    assert error.field == "code"


def test_entrypoint_in_the_project_is_accepted() -> None:
    spec = models.build_spec(spec_data(code=None, entrypoint="flows/hello.py:main"))
    assert spec.entrypoint == "flows/hello.py:main"


@pytest.mark.parametrize(
    "entrypoint",
    ["../x.py:f", "flows/../../x.py:f", "/abs.py:f", "x.py", "x.txt:f", "x.py:1f"],
)
def test_entrypoint_outside_the_project_or_malformed_is_refused(
    entrypoint: str,
) -> None:
    error = refused(code=None, entrypoint=entrypoint)
    assert error.field == "entrypoint"


def test_code_over_256_kib_is_refused_naming_code() -> None:
    padding = "#" * (models.MAX_CODE_BYTES - len(CODE) + 1)
    error = refused(code=CODE + padding)
    assert error.field == "code"
    assert "256 KiB" in str(error)


def test_code_of_exactly_256_kib_is_accepted() -> None:
    padding = "#" * (models.MAX_CODE_BYTES - len(CODE))
    models.build_spec(spec_data(code=CODE + padding))


# --- name and other fields ----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Hello", "hello_world", "-hello", "hello-", "", "x" * 64, "héllo"]
)
def test_bad_name_is_refused_explaining_the_pattern(name: str) -> None:
    error = refused(name=name)
    assert error.field == "name"
    assert "lowercase" in str(error)


@pytest.mark.parametrize("name", ["a", "hello-world-2", "x" * 63])
def test_slug_name_up_to_63_characters_is_accepted(name: str) -> None:
    assert models.build_spec(spec_data(name=name)).name == name


def test_parameters_nested_too_deep_are_refused_naming_parameters() -> None:
    # The parameters mapping itself is the first level.
    nested: Any = 1
    for _ in range(models.MAX_PARAMETERS_DEPTH + 1):
        nested = {"n": nested}
    error = refused(code="def main(**kw):\n    pass\n", parameters=nested)
    assert error.field == "parameters"
    assert "deeper" in str(error)


def test_parameters_nested_at_the_limit_are_accepted() -> None:
    nested: Any = 1
    for _ in range(models.MAX_PARAMETERS_DEPTH - 1):
        nested = [nested]
    models.build_spec(spec_data(code="def main(n):\n    pass\n", parameters={"n": nested}))


def test_parameters_over_64_kib_are_refused_naming_parameters() -> None:
    big = "x" * models.MAX_PARAMETERS_BYTES
    error = refused(code="def main(blob):\n    pass\n", parameters={"blob": big})
    assert error.field == "parameters"
    assert "64 KiB" in str(error)


def test_unknown_field_is_refused_naming_it() -> None:
    error = refused(colour="blue")
    assert error.field == "colour"


def test_field_error_is_a_value_error_too() -> None:
    with pytest.raises(ValueError):
        models.build_spec(spec_data(retries=models.MAX_RETRIES + 1))


def test_retries_above_the_limit_are_refused_naming_retries() -> None:
    assert refused(retries=models.MAX_RETRIES + 1).field == "retries"


# --- serialisation ------------------------------------------------------------------


def test_json_dump_writes_times_in_utc_with_z_and_durations_in_seconds() -> None:
    spec = models.build_spec(
        spec_data(
            every="1h30m",
            timezone="Europe/Paris",
            start="2026-07-01T09:00:00",
            end="2026-08-01T09:00:00+02:00",
            timeout="5m",
        )
    )
    dumped = spec.model_dump(mode="json")
    assert dumped["start"] == "2026-07-01T07:00:00Z"
    assert dumped["end"] == "2026-08-01T07:00:00Z"
    assert dumped["every"] == 5400.0
    assert dumped["timeout"] == 300.0
    assert dumped["retry_delay"] == 10.0


def test_json_dump_writes_at_in_utc_with_z() -> None:
    spec = models.build_spec(spec_data(at="2026-07-01T09:00:00", timezone="Europe/Paris"))
    assert spec.model_dump(mode="json")["at"] == "2026-07-01T07:00:00Z"


@pytest.mark.parametrize(
    "fields",
    [
        {
            "cron": "0 9 * * 1-5",
            "timezone": "Europe/Paris",
            "start": "2026-01-01T00:00:00",
        },
        {"every": "90s", "end": "2027-01-01T00:00:00Z", "timeout": "1m"},
        {"at": "2026-07-01T09:00:00", "timezone": "America/New_York"},
        {"rrule": "FREQ=WEEKLY;BYDAY=MO", "tags": ["a", "b"], "concurrency": 2},
        {
            "code": "def main(x, y=1):\n    pass\n",
            "parameters": {"x": {"nested": [1, 2.5, None, True]}},
            "retries": 3,
            "retry_delay": "30s",
            "concurrency_policy": "cancel-new",
        },
    ],
)
def test_json_dump_validates_back_to_an_equal_spec(fields: dict[str, Any]) -> None:
    spec = models.build_spec(spec_data(**fields))
    again = models.build_spec(spec.model_dump(mode="json"))
    assert again == spec
    assert again.model_dump(mode="json") == spec.model_dump(mode="json")


# --- merged ---------------------------------------------------------------------------


def test_merged_with_a_new_schedule_kind_clears_the_old_one() -> None:
    spec = models.build_spec(spec_data(cron="0 9 * * *"))
    merged = spec.merged({"every": "5m"})
    assert merged.cron is None
    assert merged.every == dt.timedelta(minutes=5)
    assert merged.schedule_kind == "every"


def test_merged_without_schedule_changes_keeps_the_schedule() -> None:
    spec = models.build_spec(spec_data(cron="0 9 * * *"))
    merged = spec.merged({"description": "new"})
    assert merged.cron == "0 9 * * *"
    assert merged.description == "new"


def test_merged_with_code_clears_the_entrypoint() -> None:
    spec = models.build_spec(spec_data(code=None, entrypoint="flows/a.py:main"))
    merged = spec.merged({"code": CODE})
    assert merged.entrypoint is None
    assert merged.code == CODE


def test_merged_with_an_entrypoint_clears_the_code() -> None:
    spec = models.build_spec(spec_data())
    merged = spec.merged({"entrypoint": "flows/a.py:main"})
    assert merged.code is None
    assert merged.entrypoint == "flows/a.py:main"


def test_merged_validates_the_result() -> None:
    spec = models.build_spec(spec_data())
    with pytest.raises(errors.InvalidTask) as info:
        spec.merged({"timezone": "Nowhere/Special"})
    assert info.value.field == "timezone"


def test_merged_leaves_the_original_unchanged() -> None:
    spec = models.build_spec(spec_data(cron="0 9 * * *"))
    spec.merged({"every": "5m"})
    assert spec.cron == "0 9 * * *"
    assert spec.every is None


# --- code hash, entrypoint check, job state -----------------------------------------


def test_code_sha256_is_stable_for_the_same_code() -> None:
    first = models.build_spec(spec_data(name="a"))
    second = models.build_spec(spec_data(name="b", cron="0 9 * * *"))
    assert first.code_sha256 == second.code_sha256
    assert len(first.code_sha256) == 64


def test_code_sha256_changes_with_the_code() -> None:
    first = models.build_spec(spec_data())
    second = models.build_spec(spec_data(code=CODE + "# changed\n"))
    assert first.code_sha256 != second.code_sha256


def test_code_sha256_of_an_entrypoint_changes_with_the_reference() -> None:
    first = models.build_spec(spec_data(code=None, entrypoint="flows/a.py:main"))
    second = models.build_spec(spec_data(code=None, entrypoint="flows/b.py:main"))
    assert first.code_sha256 != second.code_sha256


def _project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text("def main(who):\n    print(who)\n")
    return tmp_path


def test_check_entrypoint_refuses_a_missing_file(tmp_path: Path) -> None:
    spec = models.build_spec(spec_data(code=None, entrypoint="flows/absent.py:main"))
    with pytest.raises(errors.InvalidTask) as info:
        spec.check_entrypoint(_project(tmp_path))
    assert info.value.field == "entrypoint"
    assert "flows/absent.py" in str(info.value)


def test_check_entrypoint_refuses_a_missing_function(tmp_path: Path) -> None:
    spec = models.build_spec(
        spec_data(code=None, entrypoint="flows/hello.py:other", parameters={"who": "x"})
    )
    with pytest.raises(errors.InvalidTask) as info:
        spec.check_entrypoint(_project(tmp_path))
    assert info.value.field == "entrypoint"
    assert "'other'" in str(info.value)


def test_check_entrypoint_checks_the_parameters(tmp_path: Path) -> None:
    spec = models.build_spec(spec_data(code=None, entrypoint="flows/hello.py:main"))
    with pytest.raises(errors.InvalidTask) as info:
        spec.check_entrypoint(_project(tmp_path))
    assert info.value.field == "parameters.who"


def test_check_entrypoint_accepts_an_existing_function(tmp_path: Path) -> None:
    spec = models.build_spec(
        spec_data(code=None, entrypoint="flows/hello.py:main", parameters={"who": "x"})
    )
    spec.check_entrypoint(_project(tmp_path))


def test_check_entrypoint_ignores_inline_code(tmp_path: Path) -> None:
    models.build_spec(spec_data()).check_entrypoint(tmp_path)


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (models.JobState.PENDING, False),
        (models.JobState.RUNNING, False),
        (models.JobState.COMPLETED, True),
        (models.JobState.FAILED, True),
        (models.JobState.CANCELLED, True),
    ],
)
def test_only_completed_failed_and_cancelled_jobs_are_final(
    state: models.JobState, final: bool
) -> None:
    assert state.is_final is final
