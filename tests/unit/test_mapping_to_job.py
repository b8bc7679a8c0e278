"""A flow run shown as a job reads its arguments and version through the job contract."""

from __future__ import annotations

import uuid

from prefect.client.schemas import objects

from taskscheduler._prefect import mapping
from taskscheduler.policy import JobParameters


def run_with(parameters: dict[str, object]) -> objects.FlowRun:
    return objects.FlowRun(flow_id=uuid.uuid4(), name="r", parameters=parameters)


def test_a_jobs_arguments_and_code_version_come_from_its_parameters() -> None:
    stored = JobParameters(task="greet", code="greet-v2", parameters={"who": "ada"})
    job = mapping.to_job(run_with(stored.as_flow_parameters()), "greet")
    assert (job.parameters, job.code_version, job.task) == ({"who": "ada"}, 2, "greet")


def test_a_run_of_another_flow_shows_no_arguments() -> None:
    job = mapping.to_job(run_with({"x": 1}), None)
    assert (job.parameters, job.code_version) == ({}, None)


def test_a_job_carries_its_tasks_zone_and_utc_when_it_has_none() -> None:
    stored = JobParameters(task="greet", timezone="America/New_York")
    assert mapping.to_job(run_with(stored.as_flow_parameters()), "greet").timezone == (
        "America/New_York"
    )
    assert mapping.to_job(run_with({"task": "old"}), "old").timezone == "UTC"
    assert mapping.to_job(run_with({"x": 1}), None).timezone == "UTC"
