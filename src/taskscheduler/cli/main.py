"""The ``tasks`` application: its commands, and the entry point that keeps errors to one line."""

from __future__ import annotations

import logging
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
    add_completion=False,
)

app.command()(tasks.create)
app.command()(tasks.update)
app.command("list")(tasks.list_tasks)
app.command()(tasks.show)
app.command()(tasks.delete)
app.command()(tasks.pause)
app.command()(tasks.resume)
app.command()(tasks.schedule)
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
    finally:
        if not os.environ.get("TASKS_DEBUG"):
            # Prefect's client warns on stderr while it flushes events at exit; a CLI user
            # needs only our one-line messages.
            for name in ("prefect", "EventsWorker", "APILogWorker"):
                logging.getLogger(name).setLevel(logging.ERROR)
