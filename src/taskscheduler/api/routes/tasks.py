"""``/v1/tasks``: create, read, change, delete, pause and resume tasks; run and schedule jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from taskscheduler import errors, models
from taskscheduler.api import schemas
from taskscheduler.api.routes import CONFLICT, ERRORS, NAME_PATH_PATTERN, NOT_FOUND, scheduler
from taskscheduler.sdk import AsyncTaskScheduler

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=ERRORS)

Scheduler = Annotated[AsyncTaskScheduler, Depends(scheduler)]
TaskName = Annotated[str, Path(pattern=NAME_PATH_PATTERN, description="The task's name.")]


@router.post(
    "", status_code=201, response_model=models.Task, name="task.create", responses=CONFLICT
)
async def create_task(body: schemas.TaskCreate, ts: Scheduler) -> models.Task:
    """Create a task; 409 if the name is taken, 422 naming each bad field."""
    return await ts.create(body.model_dump(exclude_unset=True))


@router.post(
    "/bulk",
    status_code=201,
    response_model=schemas.TaskList,
    name="task.create_many",
    responses=CONFLICT,
)
async def create_tasks(body: schemas.TaskBatch, ts: Scheduler) -> schemas.TaskList:
    """Create up to 500 tasks in one call: all, or none if any is refused (409 naming the
    names taken, 422 naming each bad field as ``tasks.N.field``)."""
    tasks = [t.model_dump(exclude_unset=True) for t in body.tasks]  # type: ignore[attr-defined]
    return schemas.TaskList(items=await ts.create_many(tasks))


@router.get("", response_model=schemas.TaskPage, name="task.list")
async def list_tasks(
    ts: Scheduler,
    limit: Annotated[int, Query(ge=1, le=schemas.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    search: Annotated[str | None, Query(max_length=100, pattern=r"^[\w.-]*$")] = None,
) -> schemas.TaskPage:
    """Tasks by name, one page at a time."""
    offset = _offset(cursor)
    found = await ts.list(limit=limit + 1, offset=offset, search=search or None)
    more = len(found) > limit
    return schemas.TaskPage(
        items=found[:limit], next_cursor=schemas.encode_cursor(offset + limit) if more else None
    )


@router.get("/{name}", response_model=models.Task, name="task.show", responses=NOT_FOUND)
async def get_task(name: TaskName, ts: Scheduler) -> models.Task:
    """A task with its schedule, next runs, last job and code versions."""
    return await ts.get(name)


@router.patch("/{name}", response_model=models.Task, name="task.update", responses=NOT_FOUND)
async def update_task(
    name: TaskName,
    body: schemas.TaskUpdate,
    ts: Scheduler,
) -> models.Task:
    """Change the given fields; future jobs follow the new definition."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise errors.InvalidTask("task", "nothing to change: give at least one field")
    return await ts.update(name, changes)


@router.delete("/{name}", status_code=204, name="task.delete", responses=NOT_FOUND)
async def delete_task(name: TaskName, ts: Scheduler) -> Response:
    """Delete a task and its waiting jobs; finished jobs stay in Prefect's history."""
    await ts.delete(name)
    return Response(status_code=204)


@router.post(
    "/{name}/schedule",
    status_code=201,
    response_model=schemas.JobRef,
    name="task.schedule",
    responses=NOT_FOUND,
)
async def schedule_task(
    name: TaskName, body: schemas.ScheduleBody, ts: Scheduler
) -> schemas.JobRef:
    """Add a one-off job at ``at``."""
    job = await ts.schedule(name, body.at)
    return schemas.JobRef(job_id=job.id, job=job)


@router.post(
    "/{name}/jobs/bulk",
    status_code=201,
    response_model=models.AddedJobs,
    name="task.add_jobs",
    responses=NOT_FOUND,
)
async def add_jobs(name: TaskName, body: models.NewJobs, ts: Scheduler) -> models.AddedJobs:
    """Add up to 1,000 one-off jobs in one call, each at its own ``at`` with its own
    ``parameters`` if given (one transaction, as Prefect's scheduler creates runs). With a
    ``key``, repeating the call after a lost answer adds nothing twice and answers the same ids."""
    return await ts.add_jobs(name, body)


@router.post(
    "/{name}/run",
    status_code=201,
    response_model=schemas.JobRef,
    name="task.run",
    responses=NOT_FOUND,
)
async def run_task(
    name: TaskName, ts: Scheduler, body: schemas.RunBody | None = None
) -> schemas.JobRef:
    """Start a job now, optionally with other ``parameters``."""
    job = await ts.run(name, body.parameters if body else None)
    return schemas.JobRef(job_id=job.id, job=job)


@router.post("/{name}/pause", response_model=models.Task, name="task.pause", responses=NOT_FOUND)
async def pause_task(name: TaskName, ts: Scheduler) -> models.Task:
    """Stop the schedule; waiting scheduled jobs are removed."""
    return await ts.pause(name)


@router.post("/{name}/resume", response_model=models.Task, name="task.resume", responses=NOT_FOUND)
async def resume_task(name: TaskName, ts: Scheduler) -> models.Task:
    """Restart the schedule from now on."""
    return await ts.resume(name)


def _offset(cursor: str | None) -> int:
    try:
        return schemas.decode_cursor(cursor)
    except ValueError:
        raise errors.InvalidTask("cursor", "invalid cursor; use next_cursor as given") from None
