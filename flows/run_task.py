"""The generic flow: every job of every task is a flow run of this flow.

Deployments point at ``flows/run_task.py:run_task``; the parameters say which task, which
version of its code, its arguments and its retry/timeout policy. The work is done in
``taskscheduler.execution`` so this file stays an entrypoint.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from taskscheduler import execution


@flow(name="run-task", log_prints=True, persist_result=False)
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
) -> Any:
    """Run one job of ``task``: code version ``code`` (or ``entrypoint``) with ``parameters``.

    ``secrets`` maps environment variable names to Secret block names (names, never values).
    ``misfire`` and ``late_limit`` may skip a late job; ``max_runtime`` is the SLA the
    platform's watchdog checks while the job runs.
    """
    return execution.run_job(
        task=task,
        code=code,
        entrypoint=entrypoint,
        entry=entry,
        parameters=parameters or {},
        retries=retries,
        retry_delay=retry_delay,
        retry_jitter=retry_jitter,
        timeout=timeout,
        secrets=secrets,
        misfire=misfire,
        late_limit=late_limit,
    )
