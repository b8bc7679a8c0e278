"""Tasks ↔ deployments and jobs ↔ flow runs: our models as Prefect's objects, and back.

Functions without a server: what a deployment holds for a task (its flow parameters, tags,
schedules, concurrency options, code version block), and what the platform reads out of
deployments, flow runs, states, logs and code blocks (``models`` and ``records``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from prefect.client.schemas import objects
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

from taskscheduler import models, schedules
from taskscheduler._prefect import automations
from taskscheduler._prefect.blocks import TaskCode
from taskscheduler._prefect.records import Deployment, Run, StoredVersion
from taskscheduler.policy import FLOW_NAME, JobParameters

_STATE_SUMMARY = {
    objects.StateType.SCHEDULED: models.JobState.PENDING,
    objects.StateType.PENDING: models.JobState.PENDING,
    objects.StateType.PAUSED: models.JobState.PENDING,
    objects.StateType.RUNNING: models.JobState.RUNNING,
    objects.StateType.CANCELLING: models.JobState.RUNNING,
    objects.StateType.COMPLETED: models.JobState.COMPLETED,
    objects.StateType.FAILED: models.JobState.FAILED,
    objects.StateType.CRASHED: models.JobState.FAILED,
    objects.StateType.CANCELLED: models.JobState.CANCELLED,
}
_STATE_TYPES = {
    summary: [t for t, s in _STATE_SUMMARY.items() if s is summary] for summary in models.JobState
}
_FAILED_TYPES = (objects.StateType.FAILED, objects.StateType.CRASHED)

# ---- tasks → deployments ---------------------------------------------------------------------


def flow_parameters(spec: models.TaskSpec, version: int) -> dict[str, Any]:
    """The generic flow's parameters for a task version (the job contract, ``policy``)."""
    return JobParameters.of(spec, version).as_flow_parameters()


def deployment_tags(spec: models.TaskSpec) -> list[str]:
    """The task's tags plus one ``notify:NAME`` per notification block (runs inherit them)."""
    return [*spec.tags, *(automations.tag(name) for name in spec.notify)]


def schedule_create(plan: schedules.Plan | None) -> list[DeploymentScheduleCreate]:
    """The deployment's schedules for a task's plan (none for a task without a schedule)."""
    if plan is None:
        return []
    schedule: CronSchedule | IntervalSchedule | RRuleSchedule
    if plan.cron is not None:
        schedule = CronSchedule(cron=plan.cron, timezone=plan.timezone)
    elif plan.interval is not None:
        schedule = IntervalSchedule(
            interval=dt.timedelta(seconds=plan.interval),
            anchor_date=schedules.INTERVAL_ANCHOR,
            timezone=plan.timezone,
        )
    else:
        assert plan.rrule is not None
        schedule = RRuleSchedule(rrule=plan.rrule, timezone=plan.timezone)
    return [DeploymentScheduleCreate(schedule=schedule, active=True, slug=plan.kind)]


def concurrency_options(spec: models.TaskSpec) -> objects.ConcurrencyOptions | None:
    """What Prefect does with a job beyond the task's concurrency limit."""
    if spec.concurrency is None:
        return None
    strategy = (
        objects.ConcurrencyLimitStrategy.CANCEL_NEW
        if spec.concurrency_policy is models.ConcurrencyPolicy.CANCEL_NEW
        else objects.ConcurrencyLimitStrategy.ENQUEUE
    )
    return objects.ConcurrencyOptions(collision_strategy=strategy)


def version_block(spec: models.TaskSpec, version: int) -> TaskCode:
    """The block document of one version of a task: its source and its whole definition."""
    return TaskCode(
        task=spec.name,
        version=version,
        sha256=spec.code_sha256,
        source=spec.code,
        entrypoint=spec.entrypoint,
        entry=spec.entry,
        definition=spec.model_dump(mode="json", exclude={"code"}),
    )


# ---- deployments → tasks ---------------------------------------------------------------------


def task_arguments(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a deployment's (or flow run's) jobs pass to the code."""
    arguments = parameters.get("parameters", {})
    return dict(arguments) if isinstance(arguments, Mapping) else {}


def to_deployment(deployment: DeploymentResponse) -> Deployment:
    """A Prefect deployment as the platform's record of it."""
    return Deployment(
        id=deployment.id,
        name=deployment.name,
        flow_id=deployment.flow_id,
        version=deployment.version,
        pool=deployment.work_pool_name,
        paused=deployment.paused,
        scheduled=bool(deployment.schedules),
        schedule=describe_schedules(deployment),
        arguments=task_arguments(deployment.parameters),
        tags=tuple(deployment.tags),
        created=deployment.created,
        updated=deployment.updated,
    )


def describe_schedules(deployment: DeploymentResponse) -> str | None:
    """A deployment's schedules as text, for deployments we did not create."""
    parts = []
    for item in deployment.schedules:
        s = item.schedule
        if isinstance(s, CronSchedule):
            parts.append(f"cron {s.cron} ({s.timezone or 'UTC'})")
        elif isinstance(s, IntervalSchedule):
            parts.append(f"every {s.interval}")
        elif isinstance(s, RRuleSchedule):
            parts.append(f"rrule {s.rrule} ({s.timezone or 'UTC'})")
    return "; ".join(parts) or None


def version_of(text: str | None) -> int | None:
    """The code version a deployment points at (``v3`` → 3); None when not one of ours."""
    if text and text.startswith("v") and text[1:].isdigit():
        return int(text[1:])
    return None


def spec_from_block(block: TaskCode) -> models.TaskSpec:
    """The definition a code version was saved with (checked when it was written)."""
    return models.TaskSpec.model_validate(
        {**block.definition, "code": block.source}, context=models.STORED
    )


def stored_version(block: TaskCode) -> StoredVersion:
    """A code version block as the platform's record of it."""
    return StoredVersion(spec=spec_from_block(block), version=block.version, sha256=block.sha256)


def to_task(deployment: Deployment, current: StoredVersion | None) -> models.Task:
    """A task as its deployment and current code version describe it (no run read)."""
    spec = current.spec if current else None
    return models.Task(
        id=str(deployment.id),
        deployment_id=str(deployment.id),
        name=deployment.name,
        flow=FLOW_NAME if current else str(deployment.flow_id),
        managed=current is not None,
        spec=spec,
        schedule=spec.describe() if spec else deployment.schedule,
        paused=deployment.paused,
        pool=deployment.pool,
        tags=list(deployment.tags),
        version=current.version if current else None,
        code_sha256=current.sha256 if current else None,
        created=deployment.created,
        updated=deployment.updated,
    )


# ---- flow runs → jobs ------------------------------------------------------------------------


def summarise(state_type: objects.StateType | None) -> models.JobState:
    """Prefect's state type as one of our five job states."""
    return _STATE_SUMMARY.get(state_type or objects.StateType.SCHEDULED, models.JobState.PENDING)


def state_types(states: Sequence[models.JobState]) -> list[objects.StateType]:
    """The Prefect state types some job states stand for."""
    return [t for state in states for t in _STATE_TYPES[state]]


def state_name(run: objects.FlowRun) -> str:
    """The name of a flow run's state (Late, AwaitingRetry, ...)."""
    return run.state.name if run.state and run.state.name else str(run.state_type)


def to_run(run: objects.FlowRun) -> Run:
    """A flow run as the platform's record of it."""
    return Run(
        id=run.id,
        deployment_id=run.deployment_id,
        state_type=run.state_type.value if run.state_type else None,
        state_name=state_name(run),
        parameters=dict(run.parameters),
        run_count=run.run_count,
    )


def state_type_of(run: Run) -> objects.StateType | None:
    """Prefect's state type of a run record."""
    return objects.StateType(run.state_type) if run.state_type else None


def to_job(
    run: objects.FlowRun,
    task: str | None,
    *,
    states: Sequence[objects.State] = (),
    attempts: int | None = None,
) -> models.Job:
    """A flow run as a job."""
    state = run.state
    scheduled = run.expected_start_time
    job = JobParameters.read(run.parameters)
    version = job.version if job is not None else None
    delay = (run.start_time - scheduled).total_seconds() if run.start_time and scheduled else None
    error = state.message if state and state.type in _FAILED_TYPES else None
    return models.Job(
        id=str(run.id),
        name=run.name,
        task=task,
        state=summarise(run.state_type),
        state_name=state_name(run),
        detail=state.message if state else None,
        scheduled_time=scheduled,
        start_time=run.start_time,
        end_time=run.end_time,
        timezone=(job.timezone if job is not None else None) or "UTC",
        start_delay=delay,
        attempts=attempts if attempts is not None else run.run_count,
        code_version=version,
        parameters=dict(job.parameters) if job is not None else {},
        auto_scheduled=run.auto_scheduled,
        timeline=[
            models.StateChange(
                state=summarise(s.type),
                name=s.name or s.type.value,
                timestamp=s.timestamp,
                message=s.message,
            )
            for s in states
        ],
        error=error,
    )


def to_log_line(log: objects.Log) -> models.LogLine:
    """One of a job's log lines."""
    return models.LogLine(
        timestamp=log.timestamp,
        level=logging.getLevelName(log.level),
        logger=log.name,
        message=log.message,
    )
