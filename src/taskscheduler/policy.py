"""The job contract: what a deployment tells the code that runs each of its jobs.

Every job is a flow run of one generic flow (``FLOW_NAME``); its parameters are a
``JobParameters``, written once from the task's definition (``JobParameters.of``) and read by
whatever runs the job — the generic flow on the process and docker lanes, the fast worker, the
watchdog, the job gateway — through the same model instead of string keys. The retry rule lives
here once too (``RetryPolicy``): every lane backs off the same way.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from taskscheduler import models

# The generic flow: every job of every task is one of its flow runs.
FLOW_NAME = "run-task"
FLOW_ENTRYPOINT = "flows/run_task.py:run_task"
# Why a job that never started was cancelled when its task was deleted (wherever it waited).
TASK_DELETED = "Its task was deleted before it started"


def code_document(task: str, version: int) -> str:
    """The name of the block document holding version ``version`` of a task's code."""
    return f"{task}-v{version}"


class RetryPolicy(BaseModel):
    """How failed attempts are retried: ``retries`` more, the first after ``delay`` seconds,
    doubling after each, plus up to ``jitter`` times the delay at random."""

    model_config = ConfigDict(frozen=True)

    retries: int = 0
    delay: float = 10.0
    jitter: float = 0.2

    def backoff(self, attempt: int) -> float:
        """Seconds before the attempt after ``attempt`` (1-based), without jitter."""
        return float(self.delay * 2 ** (attempt - 1))

    def next_delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds before the attempt after ``attempt``, jitter included."""
        draw = (rng or random).random()
        return self.backoff(attempt) * (1 + draw * self.jitter)

    def allows_another(self, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based) may be followed by another."""
        return attempt <= self.retries

    def backoffs(self) -> list[float]:
        """The delays before each retry, as Prefect's task retries take them."""
        return [self.backoff(n) for n in range(1, self.retries + 1)]


class JobParameters(BaseModel):
    """The generic flow's parameters: which task and code, its arguments and its policy.

    Unknown keys are ignored, so a run created by an older version still reads; a field added
    later has a default.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    task: str
    code: str | None = Field(default=None, description="The code block document of the version.")
    entrypoint: str | None = None
    entry: str = "main"
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    retries: int = 0
    retry_delay: float = 10.0
    retry_jitter: float = 0.2
    timeout: float | None = None
    secrets: dict[str, str] | None = Field(
        default=None, description="Environment variable → Secret block name (names, not values)."
    )
    misfire: models.MisfirePolicy = models.MisfirePolicy.ALL
    late_limit: float | None = None
    max_runtime: float | None = None
    memory_mb: int | None = Field(default=None, description="Memory limit of one job, MiB.")
    cpus: float | None = Field(default=None, description="CPU limit of one job, in CPUs.")
    timezone: str | None = Field(
        default=None, description="The task's time zone, where its jobs' times are shown."
    )

    @classmethod
    def of(cls, spec: models.TaskSpec, version: int) -> JobParameters:
        """The parameters of a task's version."""
        return cls(
            task=spec.name,
            code=code_document(spec.name, version) if spec.code is not None else None,
            entrypoint=spec.entrypoint,
            entry=spec.entry,
            parameters=spec.parameters,
            retries=spec.retries,
            retry_delay=spec.retry_delay.total_seconds(),
            retry_jitter=spec.retry_jitter,
            timeout=spec.timeout.total_seconds() if spec.timeout else None,
            secrets=spec.secrets or None,
            misfire=spec.misfire,
            late_limit=spec.late_limit.total_seconds() if spec.late_limit else None,
            max_runtime=spec.max_runtime.total_seconds() if spec.max_runtime else None,
            memory_mb=spec.memory,
            cpus=spec.cpus,
            timezone=spec.timezone if spec.timezone != "UTC" else None,
        )

    @classmethod
    def read(cls, values: Mapping[str, Any]) -> JobParameters | None:
        """A flow run's parameters as ours, or None for a run of another flow."""
        if not isinstance(values.get("task"), str):
            return None
        return cls.model_validate(dict(values))

    def as_flow_parameters(self) -> dict[str, Any]:
        """What the deployment stores. The newer policy fields appear only when set, so tasks
        that do not use them keep exactly the parameters they always had."""
        optional = {"late_limit", "max_runtime", "memory_mb", "cpus", "timezone"}
        values = self.model_dump(mode="json", exclude={"misfire", *optional})
        if self.misfire is not models.MisfirePolicy.ALL:
            values["misfire"] = self.misfire.value
        for field in sorted(optional):
            if getattr(self, field) is not None:
                values[field] = getattr(self, field)
        return values

    @property
    def retry(self) -> RetryPolicy:
        """How failed attempts of this job are retried."""
        return RetryPolicy(retries=self.retries, delay=self.retry_delay, jitter=self.retry_jitter)

    @property
    def late_limit_delta(self) -> dt.timedelta | None:
        """The late limit as a duration."""
        return dt.timedelta(seconds=self.late_limit) if self.late_limit is not None else None

    @property
    def version(self) -> int | None:
        """The code version this job runs, from its block document's name."""
        if self.code is None or "-v" not in self.code:
            return None
        number = self.code.rsplit("-v", 1)[1]
        return int(number) if number.isdigit() else None
