"""The job commands (reschedule, cancel, jobs, job, logs) and apply and status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taskscheduler.cli.output import (
    JsonFlag,
    When,
    client,
    emit,
    job_view,
    t,
    when,
)
from taskscheduler.models.status import render


def reschedule(job_id: str, at: When, as_json: JsonFlag = False) -> None:
    """Move a job that has not started to another time."""
    when(at)  # an unreadable time is refused before any call
    with client() as api:
        job = api.reschedule(job_id, when(at, api.job(job_id).timezone))
    emit(job, as_json, f"{job.id} rescheduled to {t(job.scheduled_time, job.timezone)}")


def cancel(job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a waiting job or stop a running one."""
    with client() as api:
        job = api.cancel(job_id)
    emit(job, as_json, f"{job.id} {job.state_name.lower()}")


def jobs(
    task: Annotated[str | None, typer.Option(help="Only jobs of this task.")] = None,
    state: Annotated[
        str | None, typer.Option(help="pending, running, completed, failed or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    with client() as api:
        found = api.jobs(task=task, state=state, limit=limit)
    table = Table("id", "task", "state", "scheduled", "started", "delay", box=None)
    for j in found:
        table.add_row(
            j.id,
            j.task or "-",
            j.state_name,
            t(j.scheduled_time, j.timezone),
            t(j.start_time, j.timezone),
            f"{j.start_delay:.2f}s" if j.start_delay is not None else "-",
        )
    emit([j.model_dump(mode="json") for j in found], as_json, table)


def job(job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job: state timeline, attempts, times, error."""
    with client() as api:
        found = api.job(job_id)
    emit(found, as_json, job_view(found))


def logs(job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job's logs."""
    with client() as api:
        lines = api.logs(job_id)
    if as_json:
        emit([line.model_dump(mode="json") for line in lines], True)
        return
    text = "\n".join(f"{t(line.timestamp)} {line.level:<8} {line.message}" for line in lines)
    sys.stdout.write(text + ("\n" if text else ""))


def apply(path: Path, as_json: JsonFlag = False) -> None:
    """Create or update the tasks defined in a folder of task files."""
    with client() as api:
        results = api.apply(path)
    table = Table("task", "action", "file", box=None)
    for r in results:
        table.add_row(r.name, r.action, r.file)
    emit([r.model_dump(mode="json") for r in results], as_json, table)


def status(as_json: JsonFlag = False) -> None:
    """Platform health: server, database, pools and workers, backlog, late jobs, failures."""
    with client() as api:
        snapshot = api.status()
    if as_json:
        sys.stdout.write(snapshot.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(render(snapshot) + "\n")
    if not (snapshot.server_ok and snapshot.database_ok):
        raise typer.Exit(1)
