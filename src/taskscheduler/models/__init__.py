"""The domain model: what a task is, what a job is, and the rules they obey.

No Prefect import here: the glue in ``_prefect.mapping`` maps these objects onto deployments and
flow runs. Every rule that can be checked without a server is checked when a ``TaskSpec`` is
built, so a bad definition is refused before anything is written.

One module per concept, every name re-exported here: ``fields`` (shared field types and
bounds), ``schedule`` (when a task runs), ``spec`` (the task's definition), ``jobs`` and
``tasks`` (what the platform reports); ``tokens`` and ``audit`` (an API token and an audit
row as the REST API shows them, not re-exported here).
"""

from __future__ import annotations

from taskscheduler.models.fields import (
    EARLIEST,
    ENTRYPOINT_PATTERN,
    LATEST,
    MAX_CODE_BYTES,
    MAX_CPUS,
    MAX_INT,
    MAX_MEMORY_MB,
    MAX_PARAMETERS_BYTES,
    MAX_PARAMETERS_DEPTH,
    MAX_RETRIES,
    MAX_SECRETS,
    MIN_MEMORY_MB,
    NAME_PATTERN,
    POOL_PATTERN,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIXES,
    SECRET_BLOCK_PATTERN,
    SECRET_ENV_PATTERN,
    STORED,
    Duration,
    MemoryMB,
    UtcDateTime,
    check_time,
)
from taskscheduler.models.jobs import (
    MAX_NEW_JOBS,
    AddedJobs,
    Job,
    JobState,
    LogLine,
    NewJob,
    NewJobs,
    StateChange,
)
from taskscheduler.models.schedule import Schedule, build_schedule
from taskscheduler.models.spec import (
    ConcurrencyPolicy,
    MisfirePolicy,
    TaskSpec,
    build_spec,
    check_source,
)
from taskscheduler.models.tasks import MAX_NEW_TASKS, CodeVersion, Task

__all__ = [
    "EARLIEST",
    "ENTRYPOINT_PATTERN",
    "LATEST",
    "MAX_CODE_BYTES",
    "MAX_CPUS",
    "MAX_INT",
    "MAX_MEMORY_MB",
    "MAX_NEW_JOBS",
    "MAX_NEW_TASKS",
    "MAX_PARAMETERS_BYTES",
    "MAX_PARAMETERS_DEPTH",
    "MAX_RETRIES",
    "MAX_SECRETS",
    "MIN_MEMORY_MB",
    "NAME_PATTERN",
    "POOL_PATTERN",
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "SECRET_BLOCK_PATTERN",
    "SECRET_ENV_PATTERN",
    "STORED",
    "AddedJobs",
    "CodeVersion",
    "ConcurrencyPolicy",
    "Duration",
    "Job",
    "JobState",
    "LogLine",
    "MemoryMB",
    "MisfirePolicy",
    "NewJob",
    "NewJobs",
    "Schedule",
    "StateChange",
    "Task",
    "TaskSpec",
    "UtcDateTime",
    "build_schedule",
    "build_spec",
    "check_source",
    "check_time",
]
