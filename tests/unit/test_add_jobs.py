"""Adding many jobs in one call: what a call may hold, and how the CLI reads a file of jobs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydantic
import pytest

from taskscheduler import models
from taskscheduler.cli import tasks as cli_tasks
from taskscheduler.cli.failure import Failure

AT = "2030-05-06T07:08:09Z"


def test_a_call_holds_one_to_a_thousand_jobs_and_a_plain_key() -> None:
    one = models.NewJobs.model_validate({"jobs": [{"at": AT}], "key": "nightly-2030.05:06"})
    assert one.jobs[0].at == dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    for wrong in (
        {"jobs": []},
        {"jobs": [{"at": AT}] * (models.MAX_NEW_JOBS + 1)},
        {"jobs": [{"at": AT, "when": AT}]},  # an unknown field
        {"jobs": [{"at": AT}], "key": "two words"},
    ):
        with pytest.raises(pydantic.ValidationError):
            models.NewJobs.model_validate(wrong)


def test_the_cli_reads_a_json_array_or_json_lines(tmp_path: Path) -> None:
    array, lines = tmp_path / "a.json", tmp_path / "b.jsonl"
    array.write_text('[{"at": "2030-05-06 09:00"}, {"at": "2030-05-06 10:00", "parameters": {}}]')
    lines.write_text('{"at": "2030-05-06 09:00"}\n\n{"at": "2030-05-06 10:00"}\n')
    assert len(cli_tasks._job_items(str(array))) == len(cli_tasks._job_items(str(lines))) == 2
    # A time without zone is in the task's zone.
    job = cli_tasks._new_job({"at": "2030-05-06 09:00"}, "Europe/Paris", 0)
    assert job.at == dt.datetime(2030, 5, 6, 7, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"at": 5}', '"at" must be a time'),
        ("[1, 2]", "expected"),
        ('{"at": "2030-05-06 09:00", "parameters": [1]}', "job 0: parameters"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_job(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(content)
    with pytest.raises(Failure, match=message):
        for n, item in enumerate(cli_tasks._job_items(str(path))):
            cli_tasks._new_job(item, "UTC", n)
