"""Job operations of the SDK: start, move and cancel jobs, and read them and their logs."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import time
from typing import Any

from taskscheduler import models
from taskscheduler.sdk.core import SchedulerCore, audited, now
from taskscheduler.sdk.schedules import refuse_outside_window, sane_when


class JobOperations(SchedulerCore):
    """Jobs: the executions of tasks (part of ``AsyncTaskScheduler``)."""

    @audited("task.run")
    async def run(self, name: str, parameters: dict[str, Any] | None = None) -> models.Job:
        """Start a job of a task now, optionally with other arguments."""
        gw = self._gateway
        when = now()
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            self.grants.check_task_pool(name, deployment.pool)
            spec = await self._definition(session, deployment)
            refuse_outside_window(spec, when, field="run")
            overrides = None
            if parameters:
                merged = {**deployment.arguments, **parameters}
                if spec is not None:
                    spec.merged({"parameters": merged}).check_entrypoint(self.settings.project_dir)
                overrides = {"parameters": merged}
            return await gw.create_run(session, deployment, at=when, parameters=overrides)

    @audited("job.reschedule")
    async def reschedule(self, job_id: str, at: dt.datetime) -> models.Job:
        """Move a job that has not started to another time; returns the job that replaces it."""
        at = sane_when(at)
        gw = self._gateway
        async with gw.session() as session:
            run = await gw.read_run(session, job_id)
            if run.deployment_id is not None and not self.grants.unrestricted:
                # The job that replaces it is a new run of the task, in the task's pool now.
                deployment = await gw.read_deployment(session, run.deployment_id)
                self.grants.check_task_pool(deployment.name, deployment.pool)
            new_id = await gw.move(session, run, at)
            return await gw.read_job(session, new_id)

    @audited("job.cancel")
    async def cancel(self, job_id: str) -> models.Job:
        """Cancel a waiting job, or stop a running one (its worker kills it)."""
        gw = self._gateway
        async with gw.session() as session:
            run = await gw.read_run(session, job_id)
            await gw.cancel(session, run)
            return await gw.read_job(session, job_id)

    async def jobs(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[models.Job]:
        """Jobs, newest scheduled time first, optionally of one task and in one state."""
        gw = self._gateway
        async with gw.session() as session:
            deployment_id = (await gw.find_deployment(session, task)).id if task else None
            states = [models.JobState.parse(state)] if state else None
            return await gw.read_jobs(
                session, deployment_id=deployment_id, states=states, limit=limit, offset=offset
            )

    async def job(self, job_id: str) -> models.Job:
        """A job with its state timeline and attempts."""
        async with self._gateway.session() as session:
            return await self._gateway.read_job(session, job_id)

    async def logs(self, job_id: str, *, limit: int | None = None) -> builtins.list[models.LogLine]:
        """What a job's code printed and logged, and Prefect's own lines about it."""
        gw = self._gateway
        async with gw.session() as session:
            run = await gw.read_run(session, job_id)
            return await gw.read_logs(session, run.id, limit=limit)

    async def wait(
        self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5
    ) -> models.Job:
        """Poll a job until it ends (or ``timeout`` seconds pass) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.state.is_final or time.monotonic() > deadline:
                return job
            await asyncio.sleep(interval)

    async def job_counts(self) -> dict[models.JobState, int]:
        """How many jobs are in each state (for metrics)."""
        gw = self._gateway
        async with gw.session() as session:
            return {state: await gw.count_jobs(session, state) for state in models.JobState}
