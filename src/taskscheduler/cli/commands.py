"""Every ``tasks`` command: the module that holds it and the line ``tasks --help`` shows.

The help line is the first line of the command's docstring, written here again so that listing
the commands imports none of them (a unit test holds the two equal).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class Command:
    """Where a command lives (``module:attribute`` under ``taskscheduler.cli``) and its
    one-line help."""

    target: str
    help: str

    def load(self) -> Any:
        module, attribute = self.target.split(":")
        return getattr(importlib.import_module(f"taskscheduler.cli.{module}"), attribute)


COMMANDS = {
    "create": Command("tasks:create", "Create a task."),
    "update": Command("tasks:update", "Change a task; future jobs follow the new definition."),
    "list": Command("tasks:list_tasks", "List tasks."),
    "show": Command("tasks:show", "Show a task: schedule, next runs, last job, versions."),
    "delete": Command(
        "tasks:delete",
        "Delete a task and its waiting jobs (finished jobs stay in Prefect's history).",
    ),
    "pause": Command("tasks:pause", "Pause a task's schedule."),
    "resume": Command("tasks:resume", "Resume a task's schedule."),
    "schedule": Command("tasks:schedule", "Schedule a one-off job of a task at a time."),
    "add-jobs": Command(
        "tasks:add_jobs",
        "Add many one-off jobs of a task, 1,000 per call, each a row of one transaction.",
    ),
    "run": Command("tasks:run", "Run a task now."),
    "reschedule": Command("jobs:reschedule", "Move a job that has not started to another time."),
    "cancel": Command("jobs:cancel", "Cancel a waiting job or stop a running one."),
    "jobs": Command("jobs:jobs", "List jobs, newest first."),
    "job": Command("jobs:job", "Show a job: state timeline, attempts, times, error."),
    "logs": Command("jobs:logs", "Show a job's logs."),
    "apply": Command("jobs:apply", "Create or update the tasks defined in a folder of task files."),
    "status": Command(
        "jobs:status",
        "Platform health: server, database, pools and workers, backlog, late jobs, failures.",
    ),
    "token": Command("access:tokens_app", "Create, list, grant and revoke REST API tokens."),
    "audit": Command(
        "access:audit_log",
        "Show the audit log, newest first: who did what, to which task or job, and the outcome.",
    ),
    "login": Command(
        "login:login",
        "Check a token against the REST API and save it for the Python client (mode 0600).",
    ),
    "logout": Command(
        "login:logout", "Forget the saved URL and token (delete the client's config file)."
    ),
}
