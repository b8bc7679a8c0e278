"""Settings of the platform's reliability, notification and retention machinery (``TASKS_*``).

Kept apart from ``settings.Settings`` (where the platform lives) because they tune services
rather than locate them; children inherit them through the environment like every
``TASKS_*`` variable.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Self

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskscheduler import durations

# 90, "90", "1m30s": the same duration forms as task fields.
Duration = Annotated[dt.timedelta, BeforeValidator(durations.parse_duration)]
# What a running job's process (or its fast worker) sends to say it lives.
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
# A heartbeat is seen once Prefect's event persister has written it (it flushes every 5 s):
# a live job's silence may reach ``heartbeat_seconds`` plus this, never ``zombie_after``.
HEARTBEAT_SLACK = dt.timedelta(seconds=10)


class ReliabilitySettings(BaseSettings):
    """Crash detection, crash retries, misfires, concurrency waits, notifications, canary and
    retention."""

    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore")

    heartbeat_seconds: int = Field(
        default=30,
        ge=30,
        description="Seconds between a job's heartbeats (PREFECT_FLOWS_HEARTBEAT_FREQUENCY; "
        "Prefect's minimum is 30).",
    )
    zombie_after: Duration = Field(
        default=dt.timedelta(seconds=90),
        description="A running job without a heartbeat for this long is marked Crashed "
        "(by the watchdog; keep it above heartbeat_seconds plus a few seconds).",
    )
    misfire_grace: Duration = Field(
        default=dt.timedelta(seconds=60),
        description="Under misfire policy 'skip', a tick starting later than this is skipped.",
    )
    late_after: Duration = Field(
        default=dt.timedelta(seconds=60),
        description="A waiting job this far past its time is marked Late by Prefect, which "
        "notifies (PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS).",
    )
    concurrency_wait: Duration = Field(
        default=dt.timedelta(seconds=5),
        description="A job of a task at its concurrency limit asks for a slot again this often, "
        "so the next one starts within this of a slot freeing; each ask is one orchestration "
        "call (PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS; Prefect's default 30 s).",
    )
    notify: list[str] = Field(
        default_factory=list,
        description="Notification blocks told about every task's failed, crashed, late and "
        "over-SLA jobs (JSON list, e.g. '[\"ops-slack\"]').",
    )
    pending_timeout: Duration | None = Field(
        default=dt.timedelta(minutes=10),
        description="A job Pending this long never got its code started (its worker died, or "
        "the server was down when it tried): the watchdog marks it Crashed, and then retries it "
        "(none when unset or 0).",
    )
    watchdog_interval: float = Field(
        default=5.0, gt=0, description="Seconds between the watchdog's rounds."
    )
    canary_every: Duration | None = Field(
        default=dt.timedelta(minutes=1),
        description="Interval of the canary task `up` creates (none when unset or 0).",
    )
    run_retention: Duration = Field(
        default=dt.timedelta(days=14),
        description="Finished flow runs (with their logs and states) older than this are "
        "deleted by Prefect's db_vacuum service (minimum 1 hour).",
    )
    event_retention: Duration = Field(
        default=dt.timedelta(days=7), description="Prefect events are kept this long."
    )
    heartbeat_event_retention: Duration = Field(
        default=dt.timedelta(days=1),
        description="Flow-run heartbeat events (the bulk of all events) are kept this long.",
    )

    @model_validator(mode="after")
    def _zombie_after_outlasts_a_heartbeat(self) -> Self:
        least = dt.timedelta(seconds=self.heartbeat_seconds) + HEARTBEAT_SLACK
        if self.zombie_after < least:
            raise ValueError(
                f"zombie_after must be at least heartbeat_seconds + {HEARTBEAT_SLACK.seconds}s"
                f" ({least.total_seconds():g}s), or live jobs would be marked Crashed"
            )
        return self

    def server_env(self) -> dict[str, str]:
        """Prefect server settings that put retention, late detection and the wait for a
        concurrency slot in force."""
        heartbeats = int(self.heartbeat_event_retention.total_seconds())
        events = int(self.event_retention.total_seconds())
        heartbeat_override = f'{{"{HEARTBEAT_EVENT}": {heartbeats}}}'
        return {
            "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
            "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(
                int(self.run_retention.total_seconds())
            ),
            "PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES": heartbeat_override,
            # A plain timedelta setting: ISO 8601 (the others take seconds).
            "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{events}S",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": str(
                int(self.late_after.total_seconds())
            ),
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": str(
                self.concurrency_wait.total_seconds()
            ),
        }

    def job_env(self) -> dict[str, str]:
        """Settings of every job's process: heartbeats, so a dead job is noticed."""
        return {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(self.heartbeat_seconds)}


@functools.cache
def get_reliability_settings() -> ReliabilitySettings:
    """The settings, read once on first use."""
    return ReliabilitySettings()
