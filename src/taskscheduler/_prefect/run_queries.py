"""Prefect's flow runs read and written as Prefect's objects, for ``flow_runs`` to map."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas import filters, objects, sorting
from prefect.exceptions import ObjectNotFound
from prefect.states import Scheduled

from taskscheduler import errors
from taskscheduler._prefect.session import PAGE


async def create_flow_run(
    client: PrefectClient,
    deployment_id: uuid.UUID,
    *,
    at: dt.datetime,
    parameters: dict[str, Any] | None,
) -> objects.FlowRun:
    """A flow run of a deployment, scheduled at ``at``."""
    return await client.create_flow_run_from_deployment(
        deployment_id, parameters=parameters, state=Scheduled(scheduled_time=at)
    )


async def read_flow_run(client: PrefectClient, job_id: str) -> objects.FlowRun:
    """The flow run of a job id."""
    try:
        run_id = uuid.UUID(job_id)
    except ValueError:
        raise errors.JobNotFound(job_id) from None
    try:
        return await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise errors.JobNotFound(job_id) from None


async def read_flow_runs(
    client: PrefectClient,
    *,
    deployment_id: uuid.UUID | None = None,
    states: Sequence[objects.StateType] | None = None,
    auto_scheduled: bool | None = None,
    flow_only: bool = True,
    newest_first: bool = True,
    limit: int | None = 50,
    offset: int = 0,
) -> list[objects.FlowRun]:
    """Flow runs of deployments, newest first; ``limit=None`` reads them all.

    Prefect's filter has no ``auto_scheduled`` criterion, so that one is applied here.
    """
    run_filter = flow_run_filter([deployment_id] if deployment_id else None, states, flow_only)
    sort = flow_run_sort(newest_first)
    runs: list[objects.FlowRun] = []
    read = 0  # rows read from the server, before the auto_scheduled filter
    while True:
        want = min(PAGE, limit - len(runs)) if limit else PAGE
        page = await client.read_flow_runs(
            flow_run_filter=run_filter, sort=sort, limit=want, offset=offset + read
        )
        read += len(page)
        runs.extend(r for r in page if auto_scheduled is None or r.auto_scheduled is auto_scheduled)
        if len(page) < want or (limit and len(runs) >= limit):
            return runs[:limit] if limit else runs


async def first_runs(
    client: PrefectClient,
    deployment_ids: Sequence[uuid.UUID],
    states: Sequence[objects.StateType],
    *,
    newest_first: bool,
) -> dict[uuid.UUID, objects.FlowRun]:
    """Each deployment's first flow run in ``states`` (newest or soonest), for a page of
    tasks: one query for all, then one per deployment that busier ones crowded out of it."""
    if not deployment_ids:
        return {}
    page = await client.read_flow_runs(
        flow_run_filter=flow_run_filter(deployment_ids, states, flow_only=True),
        sort=flow_run_sort(newest_first),
        limit=PAGE,
    )
    found: dict[uuid.UUID, objects.FlowRun] = {}
    for run in page:
        if run.deployment_id is not None:
            found.setdefault(run.deployment_id, run)
    if len(page) < PAGE:  # every such run was read: a deployment missing has none
        return found
    missing = [i for i in deployment_ids if i not in found]
    singles = await asyncio.gather(
        *(
            read_flow_runs(
                client, deployment_id=i, states=states, newest_first=newest_first, limit=1
            )
            for i in missing
        )
    )
    found.update({i: runs[0] for i, runs in zip(missing, singles, strict=True) if runs})
    return found


async def attempts(client: PrefectClient, run: objects.FlowRun) -> int:
    """How many times the user's code was started in this job.

    On the process and docker lanes that is the run count of the task run wrapping the code;
    the fast lane runs code without task runs and counts attempts on the flow run itself.
    """
    task_runs = await client.read_task_runs(
        flow_run_filter=filters.FlowRunFilter(id=filters.FlowRunFilterId(any_=[run.id]))
    )
    return max((t.run_count for t in task_runs), default=run.run_count)


async def deployment_names(client: PrefectClient, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of deployments by id (to name the task of each job)."""
    if not ids:
        return {}
    found = await client.read_deployments(
        deployment_filter=filters.DeploymentFilter(id=filters.DeploymentFilterId(any_=list(ids)))
    )
    return {d.id: d.name for d in found}


def flow_run_filter(
    deployment_ids: Sequence[uuid.UUID] | None,
    states: Sequence[objects.StateType] | None,
    flow_only: bool,
) -> filters.FlowRunFilter:
    """Flow runs of deployments (of these, if given), in these states, optionally not subflows."""
    return filters.FlowRunFilter(
        deployment_id=filters.FlowRunFilterDeploymentId(
            any_=list(deployment_ids) if deployment_ids else None, is_null_=False
        ),
        state=filters.FlowRunFilterState(type=filters.FlowRunFilterStateType(any_=list(states)))
        if states
        else None,
        parent_task_run_id=filters.FlowRunFilterParentTaskRunId(is_null_=True)
        if flow_only
        else None,
    )


def flow_run_sort(newest_first: bool) -> sorting.FlowRunSort:
    return (
        sorting.FlowRunSort.EXPECTED_START_TIME_DESC
        if newest_first
        else sorting.FlowRunSort.EXPECTED_START_TIME_ASC
    )
