"""``/v1/jobs``: read jobs and their logs; reschedule or cancel them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from taskscheduler import errors, models
from taskscheduler.api import schemas
from taskscheduler.api.routes import CONFLICT, ERRORS, NAME_PATH_PATTERN, NOT_FOUND, scheduler
from taskscheduler.sdk import AsyncTaskScheduler

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERRORS)

Scheduler = Annotated[AsyncTaskScheduler, Depends(scheduler)]
JobId = Annotated[str, Path(max_length=64, description="The job id (a flow run id).")]


@router.get("", response_model=schemas.JobPage, name="job.list", responses=NOT_FOUND)
async def list_jobs(
    ts: Scheduler,
    task: Annotated[str | None, Query(pattern=NAME_PATH_PATTERN)] = None,
    state: models.JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=schemas.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> schemas.JobPage:
    """Jobs, newest scheduled time first, optionally of one task and in one state."""
    try:
        offset = schemas.decode_cursor(cursor)
    except ValueError:
        raise errors.InvalidTask("cursor", "invalid cursor; use next_cursor as given") from None
    found: list[models.Job] = [
        *await ts.jobs(task=task, state=state, limit=limit + 1, offset=offset)
    ]
    more = len(found) > limit
    return schemas.JobPage(
        items=found[:limit], next_cursor=schemas.encode_cursor(offset + limit) if more else None
    )


@router.get("/{job_id}", response_model=models.Job, name="job.show", responses=NOT_FOUND)
async def get_job(job_id: JobId, ts: Scheduler) -> models.Job:
    """A job with its state timeline (each state and its time, from Prefect)."""
    return await ts.job(job_id)


@router.get("/{job_id}/logs", response_model=schemas.Logs, name="job.logs", responses=NOT_FOUND)
async def job_logs(
    job_id: JobId,
    ts: Scheduler,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> schemas.Logs:
    """What the job's code printed and logged, and Prefect's own lines about it."""
    return schemas.Logs(items=await ts.logs(job_id, limit=limit))


@router.post(
    "/{job_id}/reschedule",
    response_model=schemas.JobRef,
    name="job.reschedule",
    responses={**NOT_FOUND, **CONFLICT},
)
async def reschedule_job(
    job_id: JobId, body: schemas.ScheduleBody, ts: Scheduler
) -> schemas.JobRef:
    """Move a job that has not started; the answer names the job that replaces it."""
    job = await ts.reschedule(job_id, body.at)
    return schemas.JobRef(job_id=job.id, job=job)


@router.post(
    "/{job_id}/cancel",
    response_model=models.Job,
    name="job.cancel",
    responses={**NOT_FOUND, **CONFLICT},
)
async def cancel_job(job_id: JobId, ts: Scheduler) -> models.Job:
    """Cancel a waiting job or stop a running one; 409 once it has finished."""
    return await ts.cancel(job_id)
