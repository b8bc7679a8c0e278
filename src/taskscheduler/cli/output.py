"""What every command shares: the REST client it drives, user errors, and how results are
printed."""

from __future__ import annotations

import datetime as dt
import json
import sys
import zoneinfo
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel, TypeAdapter
from rich.console import Console
from rich.table import Table

from taskscheduler import durations, models
from taskscheduler.cli.failure import fail

if TYPE_CHECKING:
    from taskscheduler.client import Client

console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
When = Annotated[
    str,
    typer.Option(
        "--at",
        help="ISO 8601 time (without an offset: in the task's time zone), 'now' or +30s.",
    ),
]


def emit(value: Any, as_json: bool, human: Any = None) -> None:
    """Print ``value`` as one JSON document, or ``human`` (a table or text) for people."""
    if as_json:
        if isinstance(value, BaseModel):
            sys.stdout.write(value.model_dump_json(indent=2) + "\n")
        else:
            adapter: TypeAdapter[Any] = TypeAdapter(
                type(value) if not isinstance(value, list) else list[Any]
            )
            sys.stdout.write(adapter.dump_json(value, indent=2).decode() + "\n")
        return
    if human is not None:
        console.print(human)


def client() -> Client:
    """The REST client, with the URL and token of ``TASKS_URL``/``TASKS_TOKEN`` or of
    ``tasks login``: every command acts as that token, with its scope and grants, and the
    audit log names it. Imported here, not above: ``tasks --help`` needs no HTTP client."""
    from taskscheduler.client import Client

    return Client()


def when(text: str, zone: str | dt.tzinfo = "UTC") -> dt.datetime:
    """A time the user typed: ISO 8601, ``now`` or an offset; naive times are on the wall
    clock of ``zone`` (the task's)."""
    tz = zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone
    try:
        return durations.parse_when(text, zone=tz)
    except ValueError as exc:
        fail(str(exc))


def t(value: dt.datetime | None, zone: str = "UTC") -> str:
    """A time as ISO 8601 UTC with milliseconds, or ``-``; in a task's ``zone`` (to the
    second) with UTC beside it when the task lives elsewhere."""
    if value is None:
        return "-"
    if zone not in ("UTC", "Etc/UTC"):
        return durations.beside_utc(value, zone)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def task_view(task: models.Task) -> Table:
    """A task for people: one field a row."""
    table = Table(show_header=False, box=None)
    table.add_row("name", task.name)
    table.add_row("deployment", task.deployment_id)
    table.add_row("state", task.state)
    table.add_row("schedule", task.schedule or "on demand")
    table.add_row("pool", task.pool or "-")
    if task.version:
        table.add_row(
            "version", f"v{task.version} (sha256 {task.code_sha256 and task.code_sha256[:12]})"
        )
    if task.spec is not None:
        spec = task.spec
        table.add_row("code", spec.entrypoint or f"inline, entry {spec.entry}()")
        table.add_row("parameters", json.dumps(spec.parameters))
        table.add_row(
            "policy",
            f"retries {spec.retries}, delay {spec.retry_delay}, timeout {spec.timeout or '-'}, "
            f"concurrency {spec.concurrency or '-'}",
        )
    table.add_row("time zone", task.timezone)
    for i, run in enumerate(task.next_runs):
        table.add_row("next runs" if i == 0 else "", t(run, task.timezone))
    if not task.next_runs:
        table.add_row("next runs", "-")
    if task.last_job:
        table.add_row("last job", f"{task.last_job.id} {task.last_job.state_name}")
    return table


def job_view(found: models.Job) -> Table:
    """A job for people: its times (in its task's zone), attempts, error and timeline."""
    zone = found.timezone
    table = Table(show_header=False, box=None)
    table.add_row("id", found.id)
    table.add_row("task", found.task or "-")
    table.add_row("state", f"{found.state.value} ({found.state_name})")
    table.add_row("scheduled", t(found.scheduled_time, zone))
    table.add_row("started", t(found.start_time, zone))
    table.add_row("ended", t(found.end_time, zone))
    table.add_row("attempts", str(found.attempts))
    if found.code_version:
        table.add_row("code version", f"v{found.code_version}")
    if found.error:
        table.add_row("error", found.error)
    for change in found.timeline:
        table.add_row("", f"{t(change.timestamp, zone)} {change.name}")
    return table
