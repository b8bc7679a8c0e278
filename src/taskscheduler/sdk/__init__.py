"""The Python SDK: every operation on tasks and jobs, async and sync, sharing one implementation.

    from taskscheduler import TaskScheduler
    with TaskScheduler() as ts:
        ts.create({"name": "hello", "code": "def main():\\n    print('hi')", "every": "1m"})
        job = ts.run("hello")

The CLI and the REST API are thin layers over ``AsyncTaskScheduler``, so all three behave the
same. The rules live in ``models``; the Prefect calls in ``_prefect`` (which answers in our
models); what a caller may use (work pools, Secret blocks) in ``grants``, checked here where
every caller passes. One module per concept: ``tasks``, ``schedules`` and ``jobs`` hold the
operations, ``core`` what they share (audit, grants, gateway), ``scheduler`` the two clients.
"""

from __future__ import annotations

from taskscheduler._prefect.gateway import Connection as PrefectConnection
from taskscheduler.declarative import Applied
from taskscheduler.models import LogLine
from taskscheduler.sdk.core import TaskInput
from taskscheduler.sdk.scheduler import AsyncTaskScheduler, TaskScheduler

__all__ = [
    "Applied",
    "AsyncTaskScheduler",
    "LogLine",
    "PrefectConnection",
    "TaskInput",
    "TaskScheduler",
]
