"""A task-scheduling platform on Prefect 3: tasks are deployments, jobs are flow runs."""

from __future__ import annotations

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
from taskscheduler.grants import Grants
from taskscheduler.models import Job, JobState, Task, TaskSpec

if TYPE_CHECKING:
    from taskscheduler.sdk import AsyncTaskScheduler, TaskScheduler

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
    """The SDK's clients, imported on first use: they load Prefect, which a job's runtime,
    the job gateway and the sandbox launcher must not do just by importing the package."""
    if name in ("AsyncTaskScheduler", "TaskScheduler"):
        from taskscheduler import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
