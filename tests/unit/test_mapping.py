"""The mapping between our models and Prefect's objects, without a server.

A task's definition goes into its deployment as the generic flow's parameters and comes back
out of deployments, code blocks and flow runs (``_prefect.mapping``); these tests build real
Prefect objects and check both directions.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prefect.client.schemas import objects
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.states import Cancelling, Completed, Failed, Running, Scheduled

from taskscheduler import models, schedules
from taskscheduler._prefect import mapping
from taskscheduler._prefect.records import Deployment, StoredVersion
from taskscheduler.policy import FLOW_NAME, JobParameters

HELLO = "def main(who='world', times=1):\n    print(who * times)\n"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def spec(**fields: object) -> models.TaskSpec:
    return models.build_spec({"name": "hello", "code": HELLO, **fields})


def deployment_response(**fields: object) -> DeploymentResponse:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "name": "hello",
        "flow_id": uuid.uuid4(),
        "version": "v2",
        "parameters": {"task": "hello", "parameters": {"who": "you"}},
        "work_pool_name": "process",
        "paused": False,
        "tags": ["team-a"],
        "created": T0,
        "updated": T0 + dt.timedelta(hours=1),
    }
    values.update(fields)
    return DeploymentResponse.model_validate(values)


# ---- TaskSpec ↔ deployment parameters ------------------------------------------------------


def test_a_spec_becomes_the_generic_flows_parameters_of_its_version() -> None:
    task = spec(
        parameters={"who": "team"},
        retries=3,
        retry_delay="30s",
        timeout="5m",
        secrets={"DB_PASSWORD": "db-pw"},
    )
    assert mapping.flow_parameters(task, 4) == {
        "task": "hello",
        "code": "hello-v4",
        "entrypoint": None,
        "entry": "main",
        "parameters": {"who": "team"},
        "retries": 3,
        "retry_delay": 30.0,
        "retry_jitter": 0.2,
        "timeout": 300.0,
        "secrets": {"DB_PASSWORD": "db-pw"},
    }


def test_policy_fields_appear_only_when_set_and_read_back() -> None:
    task = spec(misfire="skip", late_limit="2m", max_runtime="1h")
    values = mapping.flow_parameters(task, 1)
    assert (values["misfire"], values["late_limit"], values["max_runtime"]) == (
        "skip",
        120.0,
        3600.0,
    )
    job = JobParameters.read(values)
    assert job is not None
    assert job.version == 1
    assert job.misfire is models.MisfirePolicy.SKIP
    assert job.late_limit_delta == dt.timedelta(minutes=2)
    assert "misfire" not in mapping.flow_parameters(spec(), 1)


def test_an_entrypoint_task_names_no_code_block() -> None:
    task = models.TaskSpec.model_validate(
        {"name": "hello", "entrypoint": "flows/x.py:main"}, context=models.STORED
    )
    values = mapping.flow_parameters(task, 2)
    assert values["code"] is None and values["entrypoint"] == "flows/x.py:main"
    job = JobParameters.read(values)
    assert job is not None and job.version is None


def test_a_deployments_arguments_are_its_jobs_parameters() -> None:
    task = spec(parameters={"who": "team", "times": 2})
    assert mapping.task_arguments(mapping.flow_parameters(task, 1)) == {"who": "team", "times": 2}
    assert mapping.task_arguments({"other": 1}) == {}
    assert mapping.task_arguments({"parameters": ["not", "a", "dict"]}) == {}


def test_tags_carry_one_notify_tag_per_notification_block() -> None:
    task = spec(tags=["nightly"], notify=["pager", "mail"])
    assert mapping.deployment_tags(task) == ["nightly", "notify:mail", "notify:pager"]


def test_each_schedule_kind_becomes_one_prefect_schedule_with_its_slug() -> None:
    now = T0
    cron, interval, rrule = (
        mapping.schedule_create(spec(**fields).schedule_plan(now))
        for fields in (
            {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"},
            {"every": "90s"},
            {"rrule": "FREQ=DAILY;BYHOUR=7;BYMINUTE=0"},
        )
    )
    assert isinstance(cron[0].schedule, CronSchedule)
    assert (cron[0].schedule.cron, cron[0].schedule.timezone) == ("0 9 * * 1-5", "Europe/Berlin")
    assert cron[0].slug == "cron" and cron[0].active
    assert isinstance(interval[0].schedule, IntervalSchedule)
    assert interval[0].schedule.interval == dt.timedelta(seconds=90)
    assert interval[0].schedule.anchor_date == schedules.INTERVAL_ANCHOR
    assert isinstance(rrule[0].schedule, RRuleSchedule)
    assert mapping.schedule_create(None) == []


def test_concurrency_options_follow_the_policy() -> None:
    assert mapping.concurrency_options(spec()) is None
    options = mapping.concurrency_options(spec(concurrency=2, concurrency_policy="cancel-new"))
    assert options is not None
    assert options.collision_strategy is objects.ConcurrencyLimitStrategy.CANCEL_NEW
    options = mapping.concurrency_options(spec(concurrency=2))
    assert options is not None
    assert options.collision_strategy is objects.ConcurrencyLimitStrategy.ENQUEUE


def test_a_code_block_round_trips_the_spec() -> None:
    task = spec(parameters={"who": "team"}, every="1h", retries=2)
    block = mapping.version_block(task, 3)
    assert (block.task, block.version, block.source, block.sha256) == (
        "hello",
        3,
        HELLO,
        task.code_sha256,
    )
    assert "code" not in block.definition
    assert mapping.spec_from_block(block) == task
    assert mapping.stored_version(block) == StoredVersion(
        spec=task, version=3, sha256=task.code_sha256
    )


@pytest.mark.parametrize(
    ("text", "version"),
    [("v1", 1), ("v42", 42), (None, None), ("", None), ("1", None), ("v1.2", None), ("vx", None)],
)
def test_only_our_version_labels_name_a_code_version(text: str | None, version: int | None) -> None:
    assert mapping.version_of(text) == version


# ---- deployment → task -----------------------------------------------------------------------


def test_a_deployment_becomes_a_record_without_prefect_types() -> None:
    response = deployment_response(
        schedules=[
            objects.DeploymentSchedule(
                schedule=CronSchedule(cron="0 9 * * *", timezone="Europe/Paris"), active=True
            )
        ]
    )
    record = mapping.to_deployment(response)
    assert record == Deployment(
        id=response.id,
        name="hello",
        flow_id=response.flow_id,
        version="v2",
        pool="process",
        paused=False,
        scheduled=True,
        schedule="cron 0 9 * * * (Europe/Paris)",
        arguments={"who": "you"},
        tags=("team-a",),
        created=T0,
        updated=T0 + dt.timedelta(hours=1),
    )


def test_foreign_schedules_are_described() -> None:
    response = deployment_response(
        schedules=[
            objects.DeploymentSchedule(
                schedule=IntervalSchedule(interval=dt.timedelta(minutes=5)), active=True
            ),
            objects.DeploymentSchedule(schedule=RRuleSchedule(rrule="FREQ=HOURLY"), active=True),
        ]
    )
    assert mapping.describe_schedules(response) == ("every 0:05:00; rrule FREQ=HOURLY (UTC)")
    assert mapping.describe_schedules(deployment_response()) is None
    assert mapping.to_deployment(deployment_response()).scheduled is False


def test_a_managed_deployment_is_a_task_with_its_definition() -> None:
    task = spec(cron="0 9 * * *", tags=["team-a"])
    record = mapping.to_deployment(deployment_response(paused=True))
    result = mapping.to_task(record, StoredVersion(spec=task, version=2, sha256="abc"))
    assert (result.id, result.deployment_id) == (str(record.id), str(record.id))
    assert (result.name, result.flow, result.managed, result.spec) == (
        "hello",
        FLOW_NAME,
        True,
        task,
    )
    assert result.schedule == "cron 0 9 * * * (UTC)"
    assert (result.paused, result.state, result.pool, result.tags) == (
        True,
        "paused",
        "process",
        ["team-a"],
    )
    assert (result.version, result.code_sha256) == (2, "abc")
    assert result.created == T0


def test_a_foreign_deployment_is_a_task_without_a_definition() -> None:
    response = deployment_response(
        version="1.0",
        schedules=[
            objects.DeploymentSchedule(schedule=RRuleSchedule(rrule="FREQ=DAILY"), active=True)
        ],
    )
    result = mapping.to_task(mapping.to_deployment(response), None)
    assert (result.managed, result.spec, result.version, result.code_sha256) == (
        False,
        None,
        None,
        None,
    )
    assert result.flow == str(response.flow_id)
    assert result.schedule == "rrule FREQ=DAILY (UTC)"


# ---- flow run ↔ job --------------------------------------------------------------------------


def flow_run(state: objects.State, **fields: object) -> objects.FlowRun:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "name": "brave-otter",
        "flow_id": uuid.uuid4(),
        "deployment_id": uuid.uuid4(),
        "parameters": mapping.flow_parameters(spec(parameters={"who": "team"}), 3),
        "state": state,
        "state_type": state.type,
        "state_name": state.name,
        "expected_start_time": T0,
    }
    values.update(fields)
    return objects.FlowRun.model_validate(values)


def test_a_failed_flow_run_is_a_failed_job_with_its_error_and_delay() -> None:
    run = flow_run(
        Failed(message="boom"),
        start_time=T0 + dt.timedelta(seconds=4),
        end_time=T0 + dt.timedelta(seconds=10),
        run_count=2,
        auto_scheduled=True,
    )
    job = mapping.to_job(run, "hello")
    assert (job.id, job.name, job.task) == (str(run.id), "brave-otter", "hello")
    assert (job.state, job.state_name, job.detail, job.error) == (
        models.JobState.FAILED,
        "Failed",
        "boom",
        "boom",
    )
    assert (job.scheduled_time, job.start_time, job.end_time) == (
        T0,
        T0 + dt.timedelta(seconds=4),
        T0 + dt.timedelta(seconds=10),
    )
    assert job.start_delay == 4.0
    assert (job.attempts, job.code_version, job.auto_scheduled) == (2, 3, True)
    assert job.parameters == {"who": "team"}
    assert job.timeline == []


def test_a_job_carries_its_timeline_and_counted_attempts() -> None:
    states = [
        Scheduled(scheduled_time=T0),
        Running(),
        Completed(message="done"),
    ]
    run = flow_run(states[-1])
    job = mapping.to_job(run, None, states=states, attempts=5)
    assert job.task is None and job.error is None
    assert (job.state, job.attempts) == (models.JobState.COMPLETED, 5)
    assert [(c.state, c.name, c.message) for c in job.timeline] == [
        (models.JobState.PENDING, "Scheduled", None),
        (models.JobState.RUNNING, "Running", None),
        (models.JobState.COMPLETED, "Completed", "done"),
    ]


def test_a_run_of_another_flow_is_a_job_without_code_version() -> None:
    run = flow_run(Scheduled(scheduled_time=T0), parameters={"x": 1})
    job = mapping.to_job(run, "foreign")
    assert (job.state, job.code_version, job.parameters, job.start_delay) == (
        models.JobState.PENDING,
        None,
        {},
        None,
    )


def test_a_run_record_keeps_what_acting_on_it_needs() -> None:
    run = flow_run(Cancelling(), run_count=1)
    record = mapping.to_run(run)
    assert (record.id, record.deployment_id, record.state_name, record.run_count) == (
        run.id,
        run.deployment_id,
        "Cancelling",
        1,
    )
    assert record.state_type == "CANCELLING"
    assert mapping.state_type_of(record) is objects.StateType.CANCELLING
    assert record.parameters == run.parameters
    assert record.parameters is not run.parameters


def test_every_prefect_state_type_is_one_job_state_and_back() -> None:
    for state_type in objects.StateType:
        summary = mapping.summarise(state_type)
        assert state_type in mapping.state_types([summary])
    assert mapping.summarise(None) is models.JobState.PENDING
    assert set(mapping.state_types([models.JobState.FAILED])) == {
        objects.StateType.FAILED,
        objects.StateType.CRASHED,
    }
    assert set(mapping.state_types([models.JobState.RUNNING, models.JobState.CANCELLED])) == {
        objects.StateType.RUNNING,
        objects.StateType.CANCELLING,
        objects.StateType.CANCELLED,
    }


def test_a_log_line_names_its_level() -> None:
    log = objects.Log(
        name="prefect.flow_runs",
        level=40,
        message="it broke",
        timestamp=T0,
        flow_run_id=uuid.uuid4(),
    )
    assert mapping.to_log_line(log) == models.LogLine(
        timestamp=T0, level="ERROR", logger="prefect.flow_runs", message="it broke"
    )
