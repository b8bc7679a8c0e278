"""The ``tasks`` command line: every SDK operation, human tables or ``--json``.

Errors print one line on stderr and exit 1 — never a traceback (set ``TASKS_DEBUG=1`` to see
one). ``--json`` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import BaseModel, TypeAdapter
from rich.console import Console
from rich.table import Table

from taskscheduler import _cli_access, audit, durations, errors, models
from taskscheduler.sdk import TaskScheduler
from taskscheduler.settings import get_settings

app = typer.Typer(
    name="tasks",
    help="Create, schedule and watch tasks on the Prefect-based task scheduler.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
When = Annotated[str, typer.Option("--at", help="ISO 8601 time, 'now' or an offset like +30s.")]


class _Failure(Exception):
    """A user error found by the CLI itself (bad option)."""


def _fail(message: str) -> NoReturn:
    raise _Failure(message)


def _emit(value: Any, as_json: bool, human: Any = None) -> None:
    if as_json:
        adapter: TypeAdapter[Any] = TypeAdapter(
            type(value) if not isinstance(value, list) else list[Any]
        )
        if isinstance(value, BaseModel):
            sys.stdout.write(value.model_dump_json(indent=2) + "\n")
        else:
            sys.stdout.write(adapter.dump_json(value, indent=2).decode() + "\n")
        return
    if human is not None:
        console.print(human)


def _scheduler() -> TaskScheduler:
    settings = get_settings()
    return TaskScheduler(settings, actor=audit.Actor.local(settings, source="cli"))


def _when(text: str, zone: dt.tzinfo = dt.UTC) -> dt.datetime:
    try:
        return durations.parse_when(text, zone=zone)
    except ValueError as exc:
        _fail(str(exc))


def _parameters(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--param {pair!r}: use KEY=JSON, e.g. --param count=3 or --param who='\"Ada\"'")
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise errors.InvalidTask(f"parameters.{key}", f"not valid JSON ({exc.msg})") from None
    return result


def _task_changes(
    *,
    code: str | None,
    code_file: Path | None,
    entrypoint: str | None,
    entry: str | None,
    cron: str | None,
    every: str | None,
    at: str | None,
    rrule: str | None,
    tz: str | None,
    start: str | None,
    end: str | None,
    param: list[str] | None,
    retries: int | None,
    retry_delay: str | None,
    timeout: str | None,
    concurrency: int | None,
    tag: list[str] | None,
    pool: str | None,
    memory: str | None,
    cpus: float | None,
    description: str | None,
    secret: list[str] | None = None,
    misfire: str | None = None,
    late_limit: str | None = None,
    max_runtime: str | None = None,
    notify: list[str] | None = None,
) -> dict[str, Any]:
    """The task fields given on the command line (only those)."""
    if code is not None and code_file is not None:
        _fail("give --code or --code-file, not both")
    if code_file is not None:
        if not code_file.is_file():
            _fail(f"--code-file: {code_file} not found")
        code = code_file.read_text()
    try:
        zone: dt.tzinfo = ZoneInfo(tz) if tz else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.InvalidTask("timezone", f"unknown time zone {tz!r}") from None
    changes: dict[str, Any] = {
        "code": code,
        "entrypoint": entrypoint,
        "entry": entry,
        "cron": cron,
        "every": every,
        "at": _when(at, zone) if at else None,
        "rrule": rrule,
        "timezone": tz,
        "start": _when(start, zone) if start else None,
        "end": _when(end, zone) if end else None,
        "parameters": _parameters(param),
        "retries": retries,
        "retry_delay": retry_delay,
        "timeout": timeout,
        "concurrency": concurrency,
        "tags": tag or None,
        "pool": pool,
        "memory": memory,
        "cpus": cpus,
        "description": description,
        "secrets": _secrets(secret),
        "misfire": misfire,
        "late_limit": late_limit,
        "max_runtime": max_runtime,
        "notify": notify or None,
    }
    return {k: v for k, v in changes.items() if v is not None}


def _secrets(pairs: list[str] | None) -> dict[str, str] | None:
    """``NAME=block-name`` pairs as the task's ``secrets`` mapping."""
    if not pairs:
        return None
    result: dict[str, str] = {}
    for pair in pairs:
        env, sep, block = pair.partition("=")
        if not sep or not env or not block:
            _fail(f"--secret {pair!r}: use NAME=block-name, e.g. --secret DB_PASSWORD=db-password")
        result[env] = block
    return result


CodeOpt = Annotated[str | None, typer.Option("--code", help="Inline Python source.")]
CodeFileOpt = Annotated[
    Path | None, typer.Option("--code-file", help="Read inline source from a file.")
]
EntrypointOpt = Annotated[
    str | None, typer.Option("--entrypoint", help="path/to/file.py:function in the project.")
]
EntryOpt = Annotated[
    str | None, typer.Option("--entry", help="Entry function of inline code (default main).")
]
CronOpt = Annotated[str | None, typer.Option("--cron", help="Cron expression, e.g. '0 9 * * 1-5'.")]
EveryOpt = Annotated[str | None, typer.Option("--every", help="Interval, e.g. 30s, 5m, 1h.")]
AtOpt = Annotated[str | None, typer.Option("--at", help="One-off time: ISO 8601, now, +30s.")]
RRuleOpt = Annotated[str | None, typer.Option("--rrule", help="RFC 5545 RRULE.")]
TzOpt = Annotated[str | None, typer.Option("--tz", help="IANA time zone (default UTC).")]
StartOpt = Annotated[str | None, typer.Option("--start", help="No job before this time.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="No job after this time.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="KEY=JSON argument (repeatable).")
]
RetriesOpt = Annotated[int | None, typer.Option("--retries", help="Retries after a failure.")]
RetryDelayOpt = Annotated[
    str | None, typer.Option("--retry-delay", help="First retry delay; doubles each time.")
]
TimeoutOpt = Annotated[str | None, typer.Option("--timeout", help="Time limit of one attempt.")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", help="At most this many jobs at once.")
]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")]
PoolOpt = Annotated[str | None, typer.Option("--pool", help="Work pool (default: process).")]
MemoryOpt = Annotated[
    str | None, typer.Option("--memory", help="Memory limit of a job, e.g. 256m, 1g (docker pool).")
]
CpusOpt = Annotated[
    float | None, typer.Option("--cpus", help="CPU limit of a job, e.g. 0.5 (docker pool).")
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="What the task does.")]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="NAME=block-name: the Prefect Secret block's value as env var NAME (repeatable).",
    ),
]

MisfireOpt = Annotated[
    str | None,
    typer.Option("--misfire", help="Missed schedule ticks: all (default), latest or skip."),
]
LateLimitOpt = Annotated[
    str | None, typer.Option("--late-limit", help="Skip a job starting more than this late.")
]
MaxRuntimeOpt = Annotated[
    str | None,
    typer.Option("--max-runtime", help="SLA: notify when a job runs longer than this."),
]
NotifyOpt = Annotated[
    list[str] | None,
    typer.Option("--notify", help="Prefect notification block told when jobs go wrong."),
]


@app.command()
def create(
    name: str,
    code: CodeOpt = None,
    code_file: CodeFileOpt = None,
    entrypoint: EntrypointOpt = None,
    entry: EntryOpt = None,
    cron: CronOpt = None,
    every: EveryOpt = None,
    at: AtOpt = None,
    rrule: RRuleOpt = None,
    tz: TzOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    param: ParamOpt = None,
    retries: RetriesOpt = None,
    retry_delay: RetryDelayOpt = None,
    timeout: TimeoutOpt = None,
    concurrency: ConcurrencyOpt = None,
    tag: TagOpt = None,
    pool: PoolOpt = None,
    memory: MemoryOpt = None,
    cpus: CpusOpt = None,
    description: DescriptionOpt = None,
    secret: SecretOpt = None,
    misfire: MisfireOpt = None,
    late_limit: LateLimitOpt = None,
    max_runtime: MaxRuntimeOpt = None,
    notify: NotifyOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a task."""
    changes = _task_changes(**{k: v for k, v in locals().items() if k not in ("name", "as_json")})
    with _scheduler() as ts:
        task = ts.create({"name": name, **changes})
    _emit(task, as_json, _task_view(task))


@app.command()
def update(
    name: str,
    code: CodeOpt = None,
    code_file: CodeFileOpt = None,
    entrypoint: EntrypointOpt = None,
    entry: EntryOpt = None,
    cron: CronOpt = None,
    every: EveryOpt = None,
    at: AtOpt = None,
    rrule: RRuleOpt = None,
    tz: TzOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    param: ParamOpt = None,
    retries: RetriesOpt = None,
    retry_delay: RetryDelayOpt = None,
    timeout: TimeoutOpt = None,
    concurrency: ConcurrencyOpt = None,
    tag: TagOpt = None,
    pool: PoolOpt = None,
    memory: MemoryOpt = None,
    cpus: CpusOpt = None,
    description: DescriptionOpt = None,
    secret: SecretOpt = None,
    misfire: MisfireOpt = None,
    late_limit: LateLimitOpt = None,
    max_runtime: MaxRuntimeOpt = None,
    notify: NotifyOpt = None,
    no_schedule: Annotated[
        bool, typer.Option("--no-schedule", help="Remove the schedule (run on demand only).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change a task; future jobs follow the new definition."""
    fields = {k: v for k, v in locals().items() if k not in ("name", "as_json", "no_schedule")}
    changes = _task_changes(**fields)
    if no_schedule:
        changes.update(cron=None, every=None, at=None, rrule=None)
    if not changes:
        _fail("nothing to change: give at least one option")
    with _scheduler() as ts:
        task = ts.update(name, changes)
    _emit(task, as_json, _task_view(task))


@app.command("list")
def list_tasks(
    limit: Annotated[int, typer.Option(help="At most this many tasks.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many tasks.")] = 0,
    search: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks."""
    with _scheduler() as ts:
        tasks = ts.list(limit=limit, offset=offset, search=search)
    table = Table("name", "state", "schedule", "pool", "version", box=None)
    for task in tasks:
        table.add_row(
            task.name,
            task.state,
            task.schedule or "-",
            task.pool or "-",
            f"v{task.version}" if task.version else "-",
        )
    _emit([t.model_dump(mode="json") for t in tasks], as_json, table)


@app.command()
def show(name: str, as_json: JsonFlag = False) -> None:
    """Show a task: schedule, next runs, last job, versions."""
    with _scheduler() as ts:
        task = ts.get(name)
    _emit(task, as_json, _task_view(task))


@app.command()
def delete(name: str, as_json: JsonFlag = False) -> None:
    """Delete a task and its waiting jobs (finished jobs stay in Prefect's history)."""
    with _scheduler() as ts:
        ts.delete(name)
    _emit({"name": name, "deleted": True}, as_json, f"deleted {name}")


@app.command()
def pause(name: str, as_json: JsonFlag = False) -> None:
    """Pause a task's schedule."""
    with _scheduler() as ts:
        task = ts.pause(name)
    _emit(task, as_json, f"paused {name}")


@app.command()
def resume(name: str, as_json: JsonFlag = False) -> None:
    """Resume a task's schedule."""
    with _scheduler() as ts:
        task = ts.resume(name)
    _emit(task, as_json, f"resumed {name}")


@app.command()
def schedule(name: str, at: When, as_json: JsonFlag = False) -> None:
    """Schedule a one-off job of a task at a time."""
    with _scheduler() as ts:
        job = ts.schedule(name, _when(at))
    _emit(job, as_json, f"{job.id} scheduled at {_t(job.scheduled_time)}")


@app.command()
def run(
    name: str,
    param: ParamOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end.")] = False,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Run a task now."""
    with _scheduler() as ts:
        job = ts.run(name, _parameters(param))
        if wait:
            job = ts.wait(job.id, timeout=wait_timeout)
    _emit(job, as_json, _job_view(job) if wait else f"{job.id} started")
    if wait and job.state is not models.JobState.COMPLETED:
        raise typer.Exit(1)


@app.command()
def reschedule(job_id: str, at: When, as_json: JsonFlag = False) -> None:
    """Move a job that has not started to another time."""
    with _scheduler() as ts:
        job = ts.reschedule(job_id, _when(at))
    _emit(job, as_json, f"{job.id} rescheduled to {_t(job.scheduled_time)}")


@app.command()
def cancel(job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a waiting job or stop a running one."""
    with _scheduler() as ts:
        job = ts.cancel(job_id)
    _emit(job, as_json, f"{job.id} {job.state_name.lower()}")


@app.command()
def jobs(
    task: Annotated[str | None, typer.Option(help="Only jobs of this task.")] = None,
    state: Annotated[
        str | None, typer.Option(help="pending, running, completed, failed or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    with _scheduler() as ts:
        found = ts.jobs(task=task, state=state, limit=limit)
    table = Table("id", "task", "state", "scheduled", "started", "delay", box=None)
    for j in found:
        table.add_row(
            j.id,
            j.task or "-",
            j.state_name,
            _t(j.scheduled_time),
            _t(j.start_time),
            f"{j.start_delay:.2f}s" if j.start_delay is not None else "-",
        )
    _emit([j.model_dump(mode="json") for j in found], as_json, table)


@app.command()
def job(job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job: state timeline, attempts, times, error."""
    with _scheduler() as ts:
        found = ts.job(job_id)
    _emit(found, as_json, _job_view(found))


@app.command()
def logs(job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job's logs."""
    with _scheduler() as ts:
        lines = ts.logs(job_id)
    text = "\n".join(f"{_t(line.timestamp)} {line.level:<8} {line.message}" for line in lines)
    if as_json:
        _emit([line.model_dump(mode="json") for line in lines], True)
    else:
        sys.stdout.write(text + ("\n" if text else ""))


@app.command()
def apply(path: Path, as_json: JsonFlag = False) -> None:
    """Create or update the tasks defined in a folder of task files."""
    with _scheduler() as ts:
        results = ts.apply(path)
    table = Table("task", "action", "file", box=None)
    for r in results:
        table.add_row(r.name, r.action, r.file)
    _emit([r.model_dump(mode="json") for r in results], as_json, table)


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Platform health: server, database, pools and workers, backlog, late jobs, failures."""
    import asyncio

    from taskscheduler.services import monitoring

    snapshot = asyncio.run(monitoring.take_snapshot())
    if as_json:
        sys.stdout.write(snapshot.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(monitoring.render(snapshot) + "\n")
    if not (snapshot.server_ok and snapshot.database_ok):
        raise typer.Exit(1)


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z" if value else "-"


def _task_view(task: models.Task) -> Table:
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
    table.add_row("next runs", ", ".join(_t(t) for t in task.next_runs) or "-")
    if task.last_job:
        table.add_row("last job", f"{task.last_job.id} {task.last_job.state_name}")
    return table


def _job_view(found: models.Job) -> Table:
    table = Table(show_header=False, box=None)
    table.add_row("id", found.id)
    table.add_row("task", found.task or "-")
    table.add_row("state", f"{found.state.value} ({found.state_name})")
    table.add_row("scheduled", _t(found.scheduled_time))
    table.add_row("started", _t(found.start_time))
    table.add_row("ended", _t(found.end_time))
    table.add_row("attempts", str(found.attempts))
    if found.code_version:
        table.add_row("code version", f"v{found.code_version}")
    if found.error:
        table.add_row("error", found.error)
    for change in found.timeline:
        table.add_row("", f"{_t(change.timestamp)} {change.name}")
    return table


app.add_typer(_cli_access.tokens_app, name="token")
app.command("audit")(_cli_access.audit_log)


def main() -> None:
    """Entry point of the ``tasks`` console script."""
    try:
        app()
    except (errors.TaskSchedulerError, _Failure) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except Exception as exc:
        if os.environ.get("TASKS_DEBUG"):
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        if not os.environ.get("TASKS_DEBUG"):
            # Prefect's client warns on stderr while it flushes events at exit; a CLI user
            # needs only our one-line messages.
            for name in ("prefect", "EventsWorker", "APILogWorker"):
                logging.getLogger(name).setLevel(logging.ERROR)
