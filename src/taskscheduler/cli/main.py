"""The ``tasks`` application: its commands, and the entry point that keeps errors to one line."""

from __future__ import annotations

import os

import typer

from taskscheduler import errors
from taskscheduler.cli import access, jobs, login, tasks
from taskscheduler.cli.output import Failure

app = typer.Typer(
    name="tasks",
    help="Create, schedule and watch tasks on the Prefect-based task scheduler.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Shell completion from the CLI library: `tasks --install-completion` (bash, zsh, fish).
    add_completion=True,
)

app.command()(tasks.create)
app.command()(tasks.update)
app.command("list")(tasks.list_tasks)
app.command()(tasks.show)
app.command()(tasks.delete)
app.command()(tasks.pause)
app.command()(tasks.resume)
app.command()(tasks.schedule)
app.command("add-jobs")(tasks.add_jobs)
app.command()(tasks.run)
app.command()(jobs.reschedule)
app.command()(jobs.cancel)
app.command()(jobs.jobs)
app.command()(jobs.job)
app.command()(jobs.logs)
app.command()(jobs.apply)
app.command()(jobs.status)
app.add_typer(access.tokens_app, name="token")
app.command("audit")(access.audit_log)
app.command()(login.login)
app.command()(login.logout)


def main() -> None:
    """Entry point of the ``tasks`` console script."""
    try:
        app()
    except (errors.TaskSchedulerError, Failure) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except Exception as exc:
        if os.environ.get("TASKS_DEBUG"):
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
