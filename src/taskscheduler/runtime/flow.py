"""The generic flow: every job of every task is a flow run of this flow.

Deployments point at ``flows/run_task.py:run_task``, a shim that imports this. Its parameters
are the job contract (``policy.JobParameters``), spelled out one by one so that Prefect's UI
offers them in its run form; the work is done in ``execution``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from taskscheduler.policy import FLOW_NAME, JobParameters
from taskscheduler.runtime import execution


@flow(name=FLOW_NAME, log_prints=True, persist_result=False)
def run_task(
    task: str,
    code: str | None = None,
    entrypoint: str | None = None,
    entry: str = "main",
    parameters: dict[str, Any] | None = None,
    retries: int = 0,
    retry_delay: float = 10.0,
    retry_jitter: float = 0.2,
    timeout: float | None = None,
    secrets: dict[str, str] | None = None,
    misfire: str = "all",
    late_limit: float | None = None,
    max_runtime: float | None = None,
    memory_mb: int | None = None,
    cpus: float | None = None,
    timezone: str | None = None,
) -> Any:
    """Run one job of ``task``: code version ``code`` (or ``entrypoint``) with ``parameters``.

    ``secrets`` maps environment variable names to Secret block names (names, never values).
    ``misfire`` and ``late_limit`` may skip a late job; ``max_runtime`` is the SLA the
    platform's watchdog checks while the job runs. ``memory_mb`` and ``cpus`` are the limits
    the lane holds the job to (its container's, or its sandbox's cgroups), and ``timezone`` where
    its times are shown: nothing to do here.
    """
    job = JobParameters.model_validate(
        {key: value for key, value in locals().items() if value is not None}
    )
    return execution.run_job(job)
