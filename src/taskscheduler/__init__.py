"""A task-scheduling platform on Prefect 3: tasks are deployments, jobs are flow runs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskscheduler.errors import (
    InvalidSchedule,
    InvalidTask,
    JobAlreadyFinished,
    JobAlreadyStarted,
    JobNotFound,
    PermissionDenied,
    PlatformUnavailable,
    TaskAlreadyExists,
    TaskNotFound,
    TaskSchedulerError,
)

if TYPE_CHECKING:
    from taskscheduler.grants import Grants
    from taskscheduler.models import Job, JobState, Task, TaskSpec
    from taskscheduler.sdk import AsyncTaskScheduler, TaskScheduler

# Imported on first use: pydantic and the models take half a second to import, and a job's
# runtime (a fresh sandbox per job), the job gateway and the sandbox launcher import this
# package without needing them; the SDK's clients load Prefect.
_LAZY = {
    "Grants": "taskscheduler.grants",
    "Job": "taskscheduler.models",
    "JobState": "taskscheduler.models",
    "Task": "taskscheduler.models",
    "TaskSpec": "taskscheduler.models",
    "AsyncTaskScheduler": "taskscheduler.sdk",
    "TaskScheduler": "taskscheduler.sdk",
}

__all__ = [
    "AsyncTaskScheduler",
    "Grants",
    "InvalidSchedule",
    "InvalidTask",
    "Job",
    "JobAlreadyFinished",
    "JobAlreadyStarted",
    "JobNotFound",
    "JobState",
    "PermissionDenied",
    "PlatformUnavailable",
    "Task",
    "TaskAlreadyExists",
    "TaskNotFound",
    "TaskScheduler",
    "TaskSchedulerError",
    "TaskSpec",
]


def __getattr__(name: str) -> Any:
    """The names of ``_LAZY``, imported from their modules when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
