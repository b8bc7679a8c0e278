"""Prefect server tuning for thousands of jobs a minute (``TASKS_API_WORKERS``, ``TASKS_TUNED``).

``make up`` keeps Prefect's defaults. With ``TASKS_TUNED=1`` (or ``TASKS_API_WORKERS`` > 1) the
platform starts in the topology measured in ``docs/performance.md``:

- **API in N processes** (``prefect server start --workers N``). Prefect then runs no services in
  the API processes, so the platform starts them in one process of their own
  (``prefect server services start``), and every piece of cross-process state moves to Redis as
  Prefect's self-hosting guide describes: messaging (events), the messaging cache, causal
  ordering of events, concurrency lease storage and the docket task queue. Each platform gets
  its own Redis database index so two platforms on one Redis never share streams.
- **Scheduler** looking a short, fixed horizon ahead: Prefect's default keeps at least an hour of
  runs per deployment (a 1-minute interval task holds 60 future rows, 10,000 tasks 600,000);
  five minutes and at most 10 runs keep 10,000 recurring tasks at ≤ 100,000 rows, while the
  fast lane still sees every run long before its ``lookahead``. A 10 s loop (default 60 s)
  refills the horizon in small steps, and larger batches let one loop cover 10,000 deployments.
- **Event consumers** of the services read up to ``events_read_batch`` events a Redis round-trip
  (Prefect's default: one, so every event costs the persister, the triggers and the task-run
  recorder an ``XREADGROUP`` and an ``XACK`` each), and the persister writes up to
  ``events_write_batch`` events an INSERT (default 20). A read returns as soon as one event is
  there, so neither adds delay; they only stop paying per event what can be paid per batch.
- **Fast-lane workers** with 16 warm processes (default 4). A process is taken from its run's
  start call until the code ends, so a worker starts at most that many runs per start
  round-trip: with 4, 10,000 recurring tasks (2,000 jobs a minute) got 1,122 to 1,249 a minute
  started; with 16, 1,943 (docs/performance.md). The worker's memory grew from 0.5 to 1.6 GB.
- **Late runs** checked every 5 s (default 5 s as well; written down so a change is deliberate).
- **Database pool** per API process sized for the concurrent bulk calls of two workers:
  ``pool_size`` 10 + ``max_overflow`` 10 (default 5 + 10); N API processes + services must stay
  below PostgreSQL's ``max_connections`` (100 by default): 2 x 20 + 20 here.
- **PostgreSQL**, per database (``ALTER DATABASE … SET``, so no other database on the server is
  touched): ``synchronous_commit = off``. Each state change is a small transaction whose cost is
  dominated by the WAL flush; off, commits return before the flush. The price: after an OS crash
  or power loss (not a PostgreSQL or application crash) the last ≲ 0.6 s (3 x wal_writer_delay)
  of acknowledged commits can be lost — e.g. a claim or a Completed state — so a job may run
  again or show as still running. No corruption. Server-wide settings (``shared_buffers``,
  ``max_wal_size``, ``checkpoint_timeout``) need a restart and are recommended in
  ``docs/performance.md``, not applied here.

Retention (flow runs, logs, events) is configured by ``taskscheduler.reliability``.
"""

from __future__ import annotations

import datetime as dt
import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Prefect's services that read the events stream and take a read batch size from a setting.
EVENT_CONSUMERS = ("EVENT_PERSISTER", "TRIGGERS", "TASK_RUN_RECORDER")


class TuningSettings(BaseSettings):
    """The server topology and the Prefect settings for high job rates."""

    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore")

    api_workers: int = Field(
        default=1,
        ge=1,
        le=32,
        description=(
            "Prefect API processes (`prefect server start --workers N`). Above 1, services run"
            " in a separate process and Redis carries messaging, cache, ordering, leases, docket."
        ),
    )
    tuned: bool = Field(
        default=False,
        description="Apply the scheduler, database and PostgreSQL tuning with one API process too.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis of the multi-process topology; give each platform its own db index.",
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="SQLAlchemy pool size of each Prefect API process."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, description="Extra connections each API process may open under load."
    )
    scheduler_loop_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between scheduler service loops (default 60)."
    )
    scheduler_min_scheduled_time: dt.timedelta = Field(
        default=dt.timedelta(minutes=5),
        description="Runs are kept scheduled at least this far ahead (default 1 hour).",
    )
    scheduler_max_runs: int = Field(
        default=10, ge=1, description="Most future runs kept per deployment (default 100)."
    )
    scheduler_min_runs: int = Field(
        default=3, ge=1, description="Fewest future runs kept per deployment (default 3)."
    )
    scheduler_deployment_batch_size: int = Field(
        default=500, ge=1, description="Deployments read per scheduler query (default 100)."
    )
    scheduler_insert_batch_size: int = Field(
        default=1000, ge=1, description="Runs inserted per scheduler statement (default 500)."
    )
    events_read_batch: int = Field(
        default=100,
        ge=1,
        description="Events the persister, triggers and task-run recorder read a call (default 1).",
    )
    events_write_batch: int = Field(
        default=200, ge=1, description="Events the persister inserts a statement (default 20)."
    )
    fast_processes: int = Field(
        default=16,
        ge=1,
        le=256,
        description=(
            "Warm processes of each fast-lane worker (the worker's own default, untuned: 4)."
            " A process is taken from a run's start call until its code ends, so a worker"
            " starts at most this many runs per start round-trip."
        ),
    )
    late_runs_loop_seconds: float = Field(
        default=5.0, gt=0, description="Seconds between checks for late runs."
    )

    @property
    def active(self) -> bool:
        """Whether the tuned topology is asked for."""
        return self.tuned or self.api_workers > 1

    def server_env(self) -> dict[str, str]:
        """Prefect settings of the API and services processes (empty: Prefect's defaults)."""
        if not self.active:
            return {}
        env = {
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(self.scheduler_loop_seconds),
            "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": _iso(
                self.scheduler_min_scheduled_time
            ),
            "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": str(self.scheduler_max_runs),
            "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": str(self.scheduler_min_runs),
            "PREFECT_SERVER_SERVICES_SCHEDULER_DEPLOYMENT_BATCH_SIZE": str(
                self.scheduler_deployment_batch_size
            ),
            "PREFECT_SERVER_SERVICES_SCHEDULER_INSERT_BATCH_SIZE": str(
                self.scheduler_insert_batch_size
            ),
            "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": str(self.late_runs_loop_seconds),
            **{
                f"PREFECT_SERVER_SERVICES_{service}_READ_BATCH_SIZE": str(self.events_read_batch)
                for service in EVENT_CONSUMERS
            },
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": str(self.events_write_batch),
            "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": str(self.db_pool_size),
            "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": str(self.db_max_overflow),
        }
        if self.api_workers > 1:
            env.update(
                PREFECT_SERVER_EVENTS_MESSAGING_BROKER="prefect_redis.messaging",
                PREFECT_SERVER_EVENTS_MESSAGING_CACHE="prefect_redis.messaging",
                PREFECT_SERVER_EVENTS_CAUSAL_ORDERING="prefect_redis.ordering",
                PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect_redis.lease_storage",
                PREFECT_REDIS_MESSAGING_URL=self.redis_url,
                PREFECT_SERVER_DOCKET_URL=self.redis_url,
            )
        return env

    def fast_lane_env(self) -> dict[str, str]:
        """Settings of the fast-lane workers (empty: the worker's defaults)."""
        return {"TASKS_FAST_PROCESSES": str(self.fast_processes)} if self.active else {}

    def database_settings(self) -> dict[str, str]:
        """PostgreSQL settings applied to the platform's own database (``ALTER DATABASE``)."""
        return {"synchronous_commit": "off"} if self.active else {}


def _iso(value: dt.timedelta) -> str:
    return f"PT{int(value.total_seconds())}S"


@functools.cache
def get_tuning() -> TuningSettings:
    """The tuning settings, read once on first use."""
    return TuningSettings()
