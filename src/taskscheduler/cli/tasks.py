"""The task commands: create, update, list, show, delete, pause, resume, schedule, add-jobs,
run."""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import typer
from rich.table import Table

from taskscheduler import models
from taskscheduler.cli import spec_options
from taskscheduler.cli.failure import fail
from taskscheduler.cli.output import (
    JsonFlag,
    When,
    client,
    emit,
    job_view,
    t,
    task_view,
    when,
)

T = TypeVar("T")

ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="KEY=JSON argument (repeatable).")
]

_NO_SCHEDULE = inspect.Parameter(
    "no_schedule",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[
        bool, typer.Option("--no-schedule", help="Remove the schedule (run on demand only).")
    ],
)


@spec_options.with_spec_options()
def create(name: str, **options: Any) -> None:
    """Create a task."""
    as_json = options.pop("as_json")
    changes = spec_options.changes(options)
    with client() as api:
        task = api.create({"name": name, **changes})
    emit(task, as_json, task_view(task))


@spec_options.with_spec_options(_NO_SCHEDULE)
def update(name: str, **options: Any) -> None:
    """Change a task; future jobs follow the new definition."""
    as_json, no_schedule = options.pop("as_json"), options.pop("no_schedule")
    changes = spec_options.changes(options)
    if no_schedule:
        changes.update(cron=None, every=None, at=None, rrule=None)
    if not changes:
        fail("nothing to change: give at least one option")
    with client() as api:
        task = api.update(name, changes)
    emit(task, as_json, task_view(task))


def list_tasks(
    limit: Annotated[int, typer.Option(help="At most this many tasks.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many tasks.")] = 0,
    search: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks."""
    with client() as api:
        tasks = list(itertools.islice(api.iter_tasks(search=search), offset, offset + limit))
    table = Table("name", "state", "schedule", "pool", "version", box=None)
    for task in tasks:
        table.add_row(
            task.name,
            task.state,
            task.schedule or "-",
            task.pool or "-",
            f"v{task.version}" if task.version else "-",
        )
    emit([task.model_dump(mode="json") for task in tasks], as_json, table)


def show(name: str, as_json: JsonFlag = False) -> None:
    """Show a task: schedule, next runs, last job, versions."""
    with client() as api:
        task = api.get(name)
    emit(task, as_json, task_view(task))


def delete(name: str, as_json: JsonFlag = False) -> None:
    """Delete a task and its waiting jobs (finished jobs stay in Prefect's history)."""
    with client() as api:
        api.delete(name)
    emit({"name": name, "deleted": True}, as_json, f"deleted {name}")


def pause(name: str, as_json: JsonFlag = False) -> None:
    """Pause a task's schedule."""
    with client() as api:
        task = api.pause(name)
    emit(task, as_json, f"paused {name}")


def resume(name: str, as_json: JsonFlag = False) -> None:
    """Resume a task's schedule."""
    with client() as api:
        task = api.resume(name)
    emit(task, as_json, f"resumed {name}")


def schedule(name: str, at: When, as_json: JsonFlag = False) -> None:
    """Schedule a one-off job of a task at a time."""
    when(at)  # an unreadable time is refused before any call
    with client() as api:
        zone = api.get(name).timezone
        job = api.schedule(name, when(at, zone))
    emit(job, as_json, f"{job.id} scheduled at {t(job.scheduled_time, zone)}")


def add_jobs(
    name: str,
    file: Annotated[
        str | None,
        typer.Argument(
            help='Jobs as a JSON array or JSON lines of {"at": TIME, "parameters": {...}}; - for'
            " standard input. A time without zone is in the task's zone."
        ),
    ] = None,
    at: Annotated[
        list[str] | None, typer.Option("--at", help="A job's time, with no other arguments.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Name of this addition: running it again adds nothing twice."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add many one-off jobs of a task, 1,000 per call, each a row of one transaction."""
    items = [{"at": a} for a in at or []] + (_job_items(file) if file else [])
    if not items:
        fail("name the jobs: a FILE of them, or --at TIME (repeatable)")
    key = key or uuid.uuid4().hex
    with client() as api:
        zone = api.get(name).timezone
        jobs = [_new_job(item, zone, n) for n, item in enumerate(items)]
        starts = range(0, len(jobs), models.MAX_NEW_JOBS)
        calls = [_checked("--key", functools.partial(_part, jobs, i, key)) for i in starts]
        added = [api.add_jobs(name, call) for call in calls]
    result = models.AddedJobs(
        task=name,
        job_ids=[i for a in added for i in a.job_ids],
        created=sum(a.created for a in added),
    )
    times = sorted(job.at for job in jobs)
    emit(
        result,
        as_json,
        f"added {len(result.job_ids)} jobs to {name} ({result.created} new), due "
        f"{t(times[0], zone)} to {t(times[-1], zone)}; key {key}",
    )


def _part(jobs: list[models.NewJob], first: int, key: str) -> models.NewJobs:
    """The call adding ``jobs[first:]``, as many as one call takes, under its own key."""
    return models.NewJobs(jobs=jobs[first : first + models.MAX_NEW_JOBS], key=f"{key}.{first}")


def _job_items(file: str) -> list[Any]:
    """The jobs of a JSON array or JSON-lines file (``-``: standard input)."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        if text.lstrip().startswith("["):
            found = json.loads(text)
        else:
            found = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        fail(f"{file}: not JSON: {exc}")
    if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
        fail(f'{file}: expected {{"at": ..., "parameters": ...}} objects')
    return found


def _new_job(item: dict[str, Any], zone: str, n: int) -> models.NewJob:
    if not isinstance(item.get("at"), str):
        fail(f'job {n}: "at" must be a time')
    at = when(item["at"], zone)
    return _checked(f"job {n}", lambda: models.NewJob(at=at, parameters=item.get("parameters")))


def _checked(what: str, build: Callable[[], T]) -> T:
    """``build()``, its validation error as one line naming ``what``."""
    try:
        return build()
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{what}: {where + ': ' if where else ''}{first['msg']}")


def run(
    name: str,
    param: ParamOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end.")] = False,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Run a task now."""
    with client() as api:
        job = api.run(name, spec_options.parameters_of(param))
        if wait:
            job = api.wait(job.id, timeout=wait_timeout)
    emit(job, as_json, job_view(job) if wait else f"{job.id} started")
    if wait and job.state is not models.JobState.COMPLETED:
        raise typer.Exit(1)
