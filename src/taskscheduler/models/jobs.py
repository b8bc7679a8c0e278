"""A job (one execution of a task, a Prefect flow run) and its states."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from taskscheduler import errors
from taskscheduler.models.fields import UtcDateTime


class JobState(enum.StrEnum):
    """A job's state, summarised from Prefect's state types."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the job has ended and will not change again."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)

    @classmethod
    def parse(cls, state: JobState | str) -> JobState:
        """A state a caller named; ``InvalidTask`` naming the choices if there is none such
        (the same answer from the SDK, the client and the CLI)."""
        try:
            return cls(state)
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise errors.InvalidTask(
                "state", f"unknown state {state!r}; use one of {choices}"
            ) from None


class StateChange(BaseModel):
    """One entry of a job's timeline."""

    state: JobState
    name: str = Field(description="Prefect's state name, e.g. Late, AwaitingRetry, Crashed.")
    timestamp: UtcDateTime
    message: str | None = None


class Job(BaseModel):
    """One execution of a task: a Prefect flow run (the job id is the flow run id)."""

    id: str
    name: str
    task: str | None = Field(description="Task name; None once the task was deleted.")
    state: JobState
    state_name: str = Field(description="Prefect's state name: Scheduled, Late, Crashed, ...")
    detail: str | None = Field(default=None, description="Prefect's state message.")
    scheduled_time: UtcDateTime | None = None
    start_time: UtcDateTime | None = None
    end_time: UtcDateTime | None = None
    timezone: str = Field(
        default="UTC",
        description="Its task's time zone, to show its times in; the times themselves are UTC.",
    )
    start_delay: float | None = Field(default=None, description="Seconds late at start.")
    attempts: int = 0
    code_version: int | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    auto_scheduled: bool = False
    timeline: list[StateChange] = Field(default_factory=list)
    error: str | None = None


# The most jobs one call adds (one transaction in the Prefect server).
MAX_NEW_JOBS = 1000


class NewJob(BaseModel):
    """A one-off job to add to a task: when it is due and, if given, other arguments."""

    model_config = ConfigDict(extra="forbid")

    at: UtcDateTime
    parameters: dict[str, JsonValue] | None = Field(
        default=None, description="Arguments over the task's own, for this job only."
    )


class NewJobs(BaseModel):
    """Jobs to add to a task in one call; ``key`` makes a repeat of the call (after a lost
    answer) add nothing twice and answer the same jobs."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[NewJob] = Field(min_length=1, max_length=MAX_NEW_JOBS)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[\w.:-]+$")


class AddedJobs(BaseModel):
    """The jobs one call added: their ids in the order asked, and how many were new."""

    task: str
    job_ids: list[str]
    created: int


class LogLine(BaseModel):
    """One line of a job's log."""

    timestamp: dt.datetime
    level: str
    logger: str
    message: str
