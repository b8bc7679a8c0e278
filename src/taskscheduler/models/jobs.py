"""A job (one execution of a task, a Prefect flow run) and its states."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, Field, JsonValue

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
    start_delay: float | None = Field(default=None, description="Seconds late at start.")
    attempts: int = 0
    code_version: int | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    auto_scheduled: bool = False
    timeline: list[StateChange] = Field(default_factory=list)
    error: str | None = None


class LogLine(BaseModel):
    """One line of a job's log."""

    timestamp: dt.datetime
    level: str
    logger: str
    message: str
