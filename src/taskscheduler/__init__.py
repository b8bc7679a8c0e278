"""A task-scheduling platform on Prefect 3: tasks are deployments, jobs are flow runs."""

from __future__ import annotations

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
