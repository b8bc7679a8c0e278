"""What the gateway hands out besides our models: small typed records, free of Prefect types.

A ``Deployment`` is a task's deployment as the platform needs it, a ``Run`` a job's flow run as
much as acting on it again needs (moving or cancelling it), a ``StoredVersion`` a task's current
code version read back. ``mapping`` builds them from Prefect's objects.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from taskscheduler import models


@dataclass(frozen=True)
class Deployment:
    """A Prefect deployment: of the generic flow when this platform made it, or foreign."""

    id: uuid.UUID
    name: str
    flow_id: uuid.UUID
    version: str | None
    pool: str | None
    paused: bool
    scheduled: bool  # whether it has any schedule
    schedule: str | None  # its schedules as text (what a foreign deployment shows)
    arguments: dict[str, Any]  # the arguments its jobs pass to the code (``parameters``)
    tags: tuple[str, ...] = ()
    created: dt.datetime | None = None
    updated: dt.datetime | None = None


@dataclass(frozen=True)
class Run:
    """A job's flow run, read: what moving or cancelling it needs."""

    id: uuid.UUID
    deployment_id: uuid.UUID | None
    state_type: str | None  # Prefect's state type, e.g. "SCHEDULED"
    state_name: str
    parameters: dict[str, Any]  # the flow run's own parameters (the job contract)
    run_count: int = 0


@dataclass(frozen=True)
class StoredVersion:
    """A task's code version as stored: the definition it was saved with, number and hash."""

    spec: models.TaskSpec
    version: int
    sha256: str
