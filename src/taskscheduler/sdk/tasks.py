"""Task operations of the SDK: create, read, list, change, delete and apply task definitions."""

from __future__ import annotations

import builtins
import datetime as dt
import functools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskscheduler import _compensation, declarative, errors, models, schedules
from taskscheduler._prefect import gateway, mapping
from taskscheduler.declarative import Applied
from taskscheduler.sdk.core import (
    SchedulerCore,
    TaskInput,
    audit_target,
    audited,
    note,
    now,
    spec_of,
)
from taskscheduler.sdk.schedules import refuse_past_at, since

# The fields of a task that make its schedule: changing one re-plans its runs.
_SCHEDULE_FIELDS = ("cron", "every", "at", "rrule", "timezone", "start", "end")


class TaskOperations(SchedulerCore):
    """Tasks: their definitions, deployments and code versions (part of ``AsyncTaskScheduler``)."""

    @audited("task.create")
    async def create(self, task: TaskInput) -> models.Task:
        """Create a task: its first code version, its deployment and its upcoming jobs, in one
        call and one transaction of the Prefect server (as ``create_many`` creates many)."""
        when = now()
        spec, plan = self._new_task(task, when)
        gw = self._gateway
        async with gw.session() as session:
            await gw.require_secrets(session, spec.secrets)
            created = await self._create_tasks(
                session, [gateway.NewDeployment(spec, plan, since(spec, when))]
            )
        if not created:  # deleted as soon as made
            raise errors.TaskNotFound(spec.name)
        made = created[0]
        # The detail a read would add: a new task's one version, and no job yet.
        made.versions = [models.CodeVersion(version=1, sha256=spec.code_sha256)]
        return made

    async def create_many(self, tasks: Sequence[TaskInput]) -> builtins.list[models.Task]:
        """Create up to 500 tasks (``models.MAX_NEW_TASKS``) in one call and one transaction of
        the Prefect server, instead of about ten calls each: all of them, or none if any is
        refused (a field, a name taken, a pool or Secret block missing). The tasks in the
        order given; one audit entry per task."""
        names = list(dict.fromkeys(audit_target(task) for task in tasks))
        try:
            created = await self._create_many(tasks)
        except Exception as exc:
            refused: builtins.list[dict[str, str | None]] = [{"task": name} for name in names]
            await self._record_refused(
                "task.create", exc, refused, f"{len(tasks)} tasks refused: {exc}"
            )
            raise
        together = f"one of {len(created)} created together"
        made = [{"task": t.name, "code_sha256_after": t.code_sha256, "detail": together}
                for t in created]  # fmt: skip
        await self._record_each("task.create", "ok", made)
        return created

    async def _create_many(self, tasks: Sequence[TaskInput]) -> builtins.list[models.Task]:
        if not 1 <= len(tasks) <= models.MAX_NEW_TASKS:
            raise errors.InvalidTask(
                "tasks", f"give 1 to {models.MAX_NEW_TASKS} tasks, not {len(tasks)}"
            )
        when = now()
        new: builtins.list[gateway.NewDeployment] = []
        secrets: dict[str, str] = {}
        for n, task in enumerate(tasks):
            try:
                spec, plan = self._new_task(task, when)
            except errors.InvalidTask as exc:
                raise type(exc)(f"tasks.{n}.{exc.field}", exc.reason) from exc
            new.append(gateway.NewDeployment(spec, plan, since(spec, when)))
            secrets.update({block: block for block in spec.secrets.values()})
        twice = sorted(
            name for name, count in Counter(n.spec.name for n in new).items() if count > 1
        )
        if twice:
            raise errors.InvalidTask("tasks", f"named more than once: {', '.join(twice)}")
        gw = self._gateway
        async with gw.session() as session:
            await gw.require_secrets(session, secrets)
            return await self._create_tasks(session, new)

    async def _create_tasks(
        self, session: gateway.Session, new: Sequence[gateway.NewDeployment]
    ) -> builtins.list[models.Task]:
        """Create the tasks' deployments and read them back: the tasks with their first five
        jobs. Their code versions are those just stored (not read again); a deployment deleted
        in between is left out."""
        gw = self._gateway
        ids, upcoming = await gw.create_deployments(session, new)
        found = {d.id: d for d in await gw.deployments_by_id(session, ids)}
        made = []
        for one, deployment_id in zip(new, ids, strict=True):
            if (deployment := found.get(deployment_id)) is None:
                continue
            stored = mapping.stored_version(mapping.version_block(one.spec, 1))
            task = mapping.to_task(deployment, stored)
            task.next_runs = upcoming.get(deployment_id, [])
            made.append(task)
        return made

    def _new_task(
        self, task: TaskInput, when: dt.datetime
    ) -> tuple[models.TaskSpec, schedules.Plan | None]:
        """A new task's definition, checked against the caller's grants, and its plan."""
        spec = spec_of(task)
        if spec.pool is None and not self.grants.unrestricted:
            pool = self.grants.default_pool(
                self.settings.default_pool, self.settings.token_default_pool
            )
            spec = spec.model_copy(update={"pool": pool})
        spec.check_entrypoint(self.settings.project_dir)
        refuse_past_at(spec, when)
        plan = spec.schedule_plan(when)
        self.grants.check_new_pool(spec.pool, self.settings.default_pool)
        self.grants.check_secrets(spec.secrets.values())
        return spec, plan

    async def get(self, name: str) -> models.Task:
        """A task with its schedule, next runs, last job and code versions."""
        async with self._gateway.session() as session:
            return await self._read_task(session, name, detail=True)

    async def list(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        with_runs: bool = False,
    ) -> builtins.list[models.Task]:
        """Tasks by name, one page; ``with_runs`` adds each task's next run and last job, read
        with a few queries per page rather than two per task."""
        gw = self._gateway
        async with gw.session() as session:
            deployments = await gw.list_deployments(
                session, limit=limit, offset=offset, search=search
            )
            stored = await gw.current_versions(session, deployments)
            tasks = [mapping.to_task(d, s) for d, s in zip(deployments, stored, strict=True)]
            if with_runs:
                upcoming = await gw.next_run_times(session, deployments)
                last = await gw.last_jobs(session, deployments)
                for task, deployment in zip(tasks, deployments, strict=True):
                    if when := upcoming.get(deployment.id):
                        task.next_runs = [when]
                    if job := last.get(deployment.id):
                        task.last_job = job
            return tasks

    async def pools(self) -> builtins.list[str]:
        """The work pools of the platform this caller may choose for a task, sorted."""
        gw = self._gateway
        async with gw.session() as session:
            return self.grants.choosable(await gw.work_pool_names(session))

    @audited("task.update")
    async def update(self, name: str, changes: dict[str, Any]) -> models.Task:
        """Change a task; future jobs follow the new definition, none lost, none doubled.

        Prefect drops the deployment's future auto-scheduled runs when it is updated; they are
        created again at once from the new schedule (same slots, same idempotency keys), and
        jobs scheduled by hand keep their time and arguments but take the new code and policy.
        """
        if "name" in changes and changes["name"] != name:
            raise errors.InvalidTask("name", "a task cannot be renamed; create a new one")
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            self.grants.check_task_pool(name, deployment.pool)
            current, version = await self._current(session, deployment)
            note(code_sha256_before=current.code_sha256)
            spec = current.merged(changes)
            self.grants.check_new_pool(spec.pool, self.settings.default_pool)
            self.grants.check_secrets(spec.secrets.values())
            if spec.secrets != current.secrets:
                await gw.require_secrets(session, spec.secrets)
            spec.check_entrypoint(self.settings.project_dir)
            if spec == current:
                return await self._read_task(session, name, detail=True)
            when = now()
            if any(getattr(spec, f) != getattr(current, f) for f in _SCHEDULE_FIELDS):
                refuse_past_at(spec, when)
            plan = spec.schedule_plan(when)
            version += 1
            # A version the deployment never pointed at goes again: left behind, it would
            # take the next update's version number and fail it.
            async with _compensation.Compensation("task.update") as undo:
                document = await gw.save_version(session, spec, version)
                undo.push("code version", functools.partial(gw.delete_version, session, document))
                await gw.update_deployment(session, deployment, spec, version, plan)
            await gw.refresh_manual_runs(
                session, deployment.id, (current, version - 1), (spec, version)
            )
            if plan is not None and not deployment.paused:
                await gw.schedule_now(session, deployment.id, since(spec, when))
            return await self._read_task(session, name, detail=True)

    @audited("task.delete")
    async def delete(self, name: str) -> None:
        """Delete a task and its waiting jobs; finished jobs stay in Prefect's history."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            await gw.delete_deployment(session, deployment.id)
            await gw.delete_versions(session, name)

    async def apply(self, path: Path | str) -> builtins.list[Applied]:
        """Create or update every task defined in a folder (or file); idempotent. The new
        tasks are created together, ``create_many`` by ``create_many``, after the updates."""
        results = []
        new: builtins.list[models.TaskSpec] = []
        for file, data in declarative.load(Path(path)):
            spec = models.build_spec(data)
            try:
                before = await self.get(spec.name)
            except errors.TaskNotFound:
                new.append(spec)
                results.append(Applied(name=spec.name, action="created", file=str(file)))
                continue
            after = await self.update(spec.name, declarative.replacing(before, spec))
            results.append(declarative.updated(before, after, file))
        for batch in declarative.batches(new):
            await self.create_many(batch)
        return results
