"""Schedule operations of the SDK: pause and resume a task's schedule, add one-off jobs, and
the time rules every new job obeys (not in the past, not outside the task's window)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from taskscheduler import errors, models
from taskscheduler.sdk.core import SchedulerCore, audited, note, now

PAST_GRACE = dt.timedelta(minutes=5)


class ScheduleOperations(SchedulerCore):
    """When a task's jobs run (part of ``AsyncTaskScheduler``)."""

    @audited("task.pause")
    async def pause(self, name: str) -> models.Task:
        """Stop the task's schedule; waiting auto-scheduled jobs are removed."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            await gw.pause(session, deployment.id)
            return await self._read_task(session, name, detail=True)

    @audited("task.resume")
    async def resume(self, name: str) -> models.Task:
        """Restart the task's schedule from now on (missed ticks are not run)."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            await gw.resume(session, deployment.id)
            if deployment.scheduled:
                await gw.schedule_now(session, deployment.id, now())
            return await self._read_task(session, name, detail=True)

    @audited("task.schedule")
    async def schedule(self, name: str, at: dt.datetime) -> models.Job:
        """Add a one-off job of a task at ``at``."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            self.grants.check_task_pool(name, deployment.pool)
            spec = await self._definition(session, deployment)
            at = sane_when(at)
            refuse_outside_window(spec, at, field="at")
            return await gw.create_run(session, deployment, at=at, parameters=None)

    @audited("task.schedule")
    async def add_jobs(
        self, name: str, jobs: models.NewJobs | Mapping[str, Any]
    ) -> models.AddedJobs:
        """Add up to ``MAX_NEW_JOBS`` one-off jobs of a task in one call, each at its own time
        and with its own arguments if given: one transaction of the Prefect server, as its
        scheduler creates runs, instead of a call per job. With ``key``, a repeat of the call
        adds nothing twice and answers the same jobs. One audit entry for the call."""
        request = models.NewJobs.model_validate(jobs)
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            self.grants.check_task_pool(name, deployment.pool)
            spec = await self._definition(session, deployment)
            planned: list[tuple[dt.datetime, dict[str, Any] | None]] = []
            checked: set[tuple[str, ...]] = set()
            for n, job in enumerate(request.jobs):
                at = sane_when(job.at)
                refuse_outside_window(spec, at, field=f"jobs.{n}.at")
                overrides = None
                if job.parameters:
                    merged = {**deployment.arguments, **job.parameters}
                    if spec is not None and tuple(sorted(merged)) not in checked:
                        # The function must take these arguments (once per set of names).
                        spec.merged({"parameters": merged}).check_entrypoint(
                            self.settings.project_dir
                        )
                        checked.add(tuple(sorted(merged)))
                    overrides = {"parameters": merged}
                planned.append((at, overrides))
            key = request.key or uuid.uuid4().hex
            ids, created = await gw.create_runs(session, deployment, planned, key)
        times = sorted(at for at, _ in planned)
        note(
            detail=f"{len(ids)} jobs ({created} new) due {times[0].isoformat()} to "
            f"{times[-1].isoformat()}, key {key}"
        )
        return models.AddedJobs(task=name, job_ids=ids, created=created)


def since(spec: models.TaskSpec, when: dt.datetime) -> dt.datetime:
    """From when to create runs now: a one-off a little in the past still gets its run."""
    return min(spec.at, when) if spec.at is not None else when


def refuse_past_at(spec: models.TaskSpec, when: dt.datetime) -> None:
    """Refuse a one-off task whose time has passed (beyond a few minutes' grace)."""
    if spec.at is not None and spec.at < when - PAST_GRACE:
        raise errors.InvalidSchedule("at", f"{spec.at.isoformat()} is in the past")


def sane_when(at: dt.datetime) -> dt.datetime:
    """A job time in UTC when it has no zone; refused when far off or minutes in the past."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    models.check_time(at, "at")
    if at < now() - PAST_GRACE:
        raise errors.InvalidSchedule("at", f"{at.isoformat()} is in the past")
    return at


def refuse_outside_window(spec: models.TaskSpec | None, when: dt.datetime, *, field: str) -> None:
    """No job of a task is ever created outside its start/end window."""
    if spec is None:
        return
    if spec.start is not None and when < spec.start:
        raise errors.InvalidSchedule(field, f"the task starts at {spec.start.isoformat()}")
    if spec.end is not None and when > spec.end:
        raise errors.InvalidSchedule(field, f"the task ended at {spec.end.isoformat()}")
