"""The ``tasks`` application: its commands (``commands``), each loaded when used, and the entry
point that keeps errors to one line.

A command's module (and what it needs: the task model its options are generated from, rich,
the HTTP client) is imported only when that command runs or shows its own help, so ``tasks
--help`` and a mistyped command answer at once.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from taskscheduler import errors
from taskscheduler.cli.commands import COMMANDS
from taskscheduler.cli.failure import Failure


class LazyGroup(TyperGroup):
    """The top-level group: builds a command from its module when it is invoked; its help
    lists every command from ``COMMANDS`` without importing any."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name].help)
        if cmd_name not in self.commands:
            self.commands[cmd_name] = _build(cmd_name, COMMANDS[cmd_name].load())
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _build(name: str, target: Any) -> Any:
    """The click command of a command function, or the group of a sub-application."""
    if not isinstance(target, typer.Typer):
        single = typer.Typer(add_completion=False, rich_markup_mode=None)
        single.command(name)(target)
        target = single
    command = typer.main.get_command(target)
    command.name = name
    return command


app = typer.Typer(
    name="tasks",
    cls=LazyGroup,
    # Help as click writes it: rich's help renderer (and markdown-it) cost more than the rest
    # of ``tasks --help`` together. Results are still rich tables.
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Shell completion from the CLI library: `tasks --install-completion` (bash, zsh, fish).
    add_completion=True,
)


@app.callback()
def _tasks() -> None:
    """Create, schedule and watch tasks on the Prefect-based task scheduler."""


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
