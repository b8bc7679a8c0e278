"""A task-scheduling platform on Prefect 3: tasks are deployments, jobs are flow runs."""

from __future__ import annotations

from taskscheduler.errors import (
    InvalidSchedule,
    InvalidTask,
    JobAlreadyFinished,
    JobAlreadyStarted,
    JobNotFound,
    PlatformUnavailable,
    TaskAlreadyExists,
    TaskNotFound,
    TaskSchedulerError,
)
from taskscheduler.models import Job, JobState, Task, TaskSpec
from taskscheduler.sdk import AsyncTaskScheduler, TaskScheduler

__all__ = [
    "AsyncTaskScheduler",
    "InvalidSchedule",
    "InvalidTask",
    "Job",
    "JobAlreadyFinished",
    "JobAlreadyStarted",
    "JobNotFound",
    "JobState",
    "PlatformUnavailable",
    "Task",
    "TaskAlreadyExists",
    "TaskNotFound",
    "TaskScheduler",
    "TaskSchedulerError",
    "TaskSpec",
]
