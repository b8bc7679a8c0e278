"""Tasks ↔ deployments: finding, listing, creating, changing and deleting a task's deployment."""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas import filters, sorting
from prefect.client.schemas.actions import DeploymentCreate, DeploymentUpdate
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from taskscheduler import errors, models, schedules
from taskscheduler._prefect import automations, docker_pool, mapping
from taskscheduler._prefect.records import Deployment
from taskscheduler._prefect.session import PAGE, GatewayBase, Session
from taskscheduler._prefect.versions import version_documents
from taskscheduler.policy import FLOW_ENTRYPOINT
from taskscheduler.sandbox import limits

# The Prefect server's deletion of a deployment with its held runs (``_prefect.server.deletion``)
# and its creation of many deployments at once (``_prefect.server.new_deployments``).
DELETE_DEPLOYMENT = "/taskscheduler/deployments"
CREATE_DEPLOYMENTS = "/taskscheduler/deployments/bulk"


@dataclass(frozen=True)
class NewDeployment:
    """A task to create: its definition, its schedule's plan, and from when its first jobs
    are made."""

    spec: models.TaskSpec
    plan: schedules.Plan | None
    since: dt.datetime


class Deployments(GatewayBase):
    """The gateway's deployment operations (a part of ``gateway.Gateway``)."""

    async def find_deployment(self, session: Session, name: str) -> Deployment:
        """The deployment named ``name`` (ours first, when another flow has one too)."""
        return mapping.to_deployment(await self._find_deployment(session.client, name))

    async def _find_deployment(self, client: PrefectClient, name: str) -> DeploymentResponse:
        found = await client.read_deployments(
            deployment_filter=filters.DeploymentFilter(
                name=filters.DeploymentFilterName(any_=[name])
            )
        )
        if not found:
            raise errors.TaskNotFound(name)
        if len(found) > 1:
            ours = await self._flow_id(client)
            found = [d for d in found if d.flow_id == ours] or found
        return found[0]

    async def read_deployment(self, session: Session, deployment_id: uuid.UUID) -> Deployment:
        """The deployment of a job, by id."""
        try:
            return mapping.to_deployment(await session.client.read_deployment(deployment_id))
        except ObjectNotFound:
            raise errors.TaskNotFound(str(deployment_id)) from None

    async def deployments_by_id(
        self, session: Session, ids: Sequence[uuid.UUID]
    ) -> list[Deployment]:
        """The deployments with these ids, in that order, read a page of ids at a time."""
        found: dict[uuid.UUID, DeploymentResponse] = {}
        for start in range(0, len(ids), PAGE):
            page = ids[start : start + PAGE]
            for deployment in await session.client.read_deployments(
                deployment_filter=filters.DeploymentFilter(
                    id=filters.DeploymentFilterId(any_=list(page))
                ),
                limit=len(page),
            ):
                found[deployment.id] = deployment
        return [mapping.to_deployment(found[i]) for i in ids if i in found]

    async def list_deployments(
        self, session: Session, *, limit: int, offset: int, search: str | None = None
    ) -> list[Deployment]:
        """Deployments sorted by name, one page of any size (read in Prefect's largest pages)."""
        name_filter = filters.DeploymentFilterName(like_=search) if search else None
        found: list[DeploymentResponse] = []
        while True:
            want = min(PAGE, limit - len(found))
            page = await session.client.read_deployments(
                deployment_filter=filters.DeploymentFilter(name=name_filter) if search else None,
                sort=sorting.DeploymentSort.NAME_ASC,
                limit=want,
                offset=offset + len(found),
            )
            found.extend(page)
            if len(page) < want or len(found) >= limit:
                return [mapping.to_deployment(d) for d in found]

    async def create_deployments(
        self, session: Session, new: Sequence[NewDeployment]
    ) -> tuple[list[uuid.UUID], dict[uuid.UUID, list[dt.datetime]]]:
        """Create many tasks' deployments, with their first code versions and first jobs, in
        one call and one transaction of the Prefect server (``_prefect.server.new_deployments``):
        all of them or, if any is refused, none. Their ids in the order given, and when each
        one's first five jobs are due (those that have any)."""
        client = session.client
        for blocks in sorted({tuple(n.spec.notify) for n in new}):
            await automations.route_tasks(client, list(blocks))
        try:
            answer = await self._create_deployments(client, new, fresh=False)
        except _StaleId:
            answer = await self._create_deployments(client, new, fresh=True)
        due = {
            uuid.UUID(i): [dt.datetime.fromisoformat(t) for t in times]
            for i, times in answer["next_runs"].items()
        }
        return [uuid.UUID(i) for i in answer["ids"]], due

    async def _create_deployments(
        self, client: PrefectClient, new: Sequence[NewDeployment], *, fresh: bool
    ) -> dict[str, Any]:
        flow_id = await self._flow_id(client, fresh=fresh)
        block = await self._code_block_ids(client, fresh=fresh)
        body = {
            "documents": version_documents(block, [(n.spec, 1) for n in new]),
            "deployments": [
                {
                    "deployment": DeploymentCreate(
                        **self._deployment_fields(flow_id, n.spec, 1, n.plan)
                    ).model_dump(mode="json", exclude_unset=True),
                    "schedule_from": n.since.isoformat() if n.plan is not None else None,
                }
                for n in new
            ],
        }
        try:
            with _pool_bounds():
                response = await client.request("POST", cast(Any, CREATE_DEPLOYMENTS), json=body)
        except PrefectHTTPStatusError as error:
            status, detail = error.response.status_code, _detail(error.response)
            said = detail if isinstance(detail, dict) else {}
            if status == 409 and said.get("taken"):
                raise errors.TaskAlreadyExists(", ".join(said["taken"])) from None
            if status == 404 and said.get("missing_pool"):
                pool = said["missing_pool"]
                raise errors.InvalidTask("pool", f"no work pool named {pool!r}") from None
            if status == 404 and ("missing_flow" in said or "missing_block" in said):
                if not fresh:
                    raise _StaleId from None
                raise errors.PlatformUnavailable(
                    f"Prefect lost the platform's flow or code block while creating: {said}"
                ) from None
            if status == 404:
                raise _no_routes() from None
            raise
        answer: dict[str, Any] = response.json()
        return answer

    def _deployment_fields(
        self,
        flow_id: uuid.UUID,
        spec: models.TaskSpec,
        version: int,
        plan: schedules.Plan | None,
    ) -> dict[str, Any]:
        """The arguments of Prefect's ``create_deployment`` for a task's deployment."""
        pool = spec.pool or self.settings.default_pool
        return {
            "flow_id": flow_id,
            "name": spec.name,
            "version": f"v{version}",
            "description": spec.description or None,
            "entrypoint": FLOW_ENTRYPOINT,
            "parameters": mapping.flow_parameters(spec, version),
            "parameter_openapi_schema": _flow_parameter_schema(),
            "schedules": mapping.schedule_create(plan),
            "work_pool_name": pool,
            "tags": mapping.deployment_tags(spec),
            "concurrency_limit": spec.concurrency,
            "concurrency_options": mapping.concurrency_options(spec),
            "pull_steps": [self._pull_step(pool)],
            "job_variables": self._job_variables(spec, pool),
            "enforce_parameter_schema": False,
            "paused": False,
        }

    async def update_deployment(
        self,
        session: Session,
        deployment: Deployment,
        spec: models.TaskSpec,
        version: int,
        plan: schedules.Plan | None,
    ) -> None:
        """Point the deployment at a new version; Prefect drops its future auto-scheduled runs."""
        client = session.client
        pool = spec.pool or self.settings.default_pool
        await self._require_pool(client, pool)
        await automations.route_tasks(client, spec.notify)
        update = DeploymentUpdate(
            version=f"v{version}",
            description=spec.description or None,
            parameters=mapping.flow_parameters(spec, version),
            schedules=[s.model_dump(exclude_unset=True) for s in mapping.schedule_create(plan)],
            tags=mapping.deployment_tags(spec),
            work_pool_name=pool,
            concurrency_limit=spec.concurrency,
            concurrency_options=mapping.concurrency_options(spec),
            pull_steps=[self._pull_step(pool)],
            job_variables=self._job_variables(spec, pool),
        )
        with _pool_bounds():
            await client.update_deployment(deployment.id, update)

    async def schedule_now(
        self, session: Session, deployment_id: uuid.UUID, since: dt.datetime
    ) -> None:
        """Ask Prefect's scheduler to create the deployment's upcoming runs right away.

        The scheduler service would do it within its loop interval; doing it now means runs
        due in the next seconds are not missed. Prefect's idempotency keys make it safe to
        race with the service.
        """
        response = await session.client.request(
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={"start_time": since.isoformat()},
        )
        response.raise_for_status()

    async def require_secrets(self, session: Session, secrets: dict[str, str]) -> None:
        """Refuse a task that names a Secret block that does not exist (values are not read)."""
        for env, block in sorted(secrets.items()):
            try:
                await session.client.read_block_document_by_name(
                    block, block_type_slug="secret", include_secrets=False
                )
            except ObjectNotFound:
                raise errors.InvalidTask(
                    f"secrets.{env}", f"no Secret block named {block!r}"
                ) from None

    async def pause(self, session: Session, deployment_id: uuid.UUID) -> None:
        """Stop creating runs; Prefect deletes the auto-scheduled ones still waiting."""
        await session.client.pause_deployment(deployment_id)

    async def resume(self, session: Session, deployment_id: uuid.UUID) -> None:
        """Start creating runs again."""
        await session.client.resume_deployment(deployment_id)

    async def delete_deployment(self, session: Session, deployment_id: uuid.UUID) -> None:
        """Delete the deployment and end every job of it that has not started.

        Prefect deletes its Scheduled runs and keeps finished ones, but leaves its Pending
        runs, the ones a worker has claimed and holds for their instant. The Prefect server's
        own route (``_prefect.server.deletion``) cancels those and deletes the deployment in
        one transaction, so a held job either started before the delete or never starts.
        """
        client = session.client
        path = f"{DELETE_DEPLOYMENT}/{deployment_id}"
        try:
            # Our own route: not among the paths Prefect's client names.
            await client.request("DELETE", cast(Any, path))
        except PrefectHTTPStatusError as error:
            if error.response.status_code != 404:
                raise
            try:  # gone already, or a Prefect server without our routes?
                await client.read_deployment(deployment_id)
            except ObjectNotFound:
                return
            raise _no_routes() from None

    async def work_pool_names(self, session: Session) -> list[str]:
        """The names of every work pool on the server."""
        return [pool.name for pool in await session.client.read_work_pools()]

    async def _require_pool(self, client: PrefectClient, pool: str) -> None:
        try:
            await client.read_work_pool(pool)
        except ObjectNotFound:
            raise errors.InvalidTask("pool", f"no work pool named {pool!r}") from None

    def _job_variables(self, spec: models.TaskSpec, pool: str) -> dict[str, Any]:
        """The task's resource limits and labels, for pools that run jobs in containers.

        The sandbox pool's worker reads the limits from the job's parameters instead
        (``policy.JobParameters``); they are checked against its bounds here."""
        if pool == limits.POOL:
            for field, bounds in (("memory", limits.MEMORY_MB), ("cpus", limits.CPUS)):
                if not bounds.admits(getattr(spec, field)):
                    raise errors.InvalidTask(
                        field,
                        f"outside the sandbox pool's bounds: {bounds.minimum:g} to "
                        f"{bounds.maximum:g}",
                    )
            return {}
        if pool not in self.settings.container_pools:
            for field in ("memory", "cpus"):
                if getattr(spec, field) is not None:
                    raise errors.InvalidTask(
                        field, f"only container pools limit it; pool {pool!r} is not one"
                    )
            return {}
        return docker_pool.job_variables(spec.name, spec.memory, spec.cpus)

    def _pull_step(self, pool: str) -> dict[str, Any]:
        """Run flows from the project directory (inside the image for container pools)."""
        directory = (
            self.settings.container_project_dir
            if pool in self.settings.container_pools
            else str(self.settings.project_dir)
        )
        return {"prefect.deployments.steps.set_working_directory": {"directory": directory}}


# The server checks job variables against the pool's schema; name our field, not the variable.
_JOB_VARIABLE_FIELDS = {"memory_mb": "memory", "nano_cpus": "cpus"}


@contextmanager
def _pool_bounds() -> Iterator[None]:
    """Turn the server's refusal of a job variable (a limit out of the pool's bounds) into
    ``InvalidTask`` naming the task's field."""
    try:
        yield
    except PrefectHTTPStatusError as exc:
        detail = str(_detail(exc.response) or "")
        found = re.search(r"Validation failed for field '(\w+)'\. Failure reason: (.*)", detail)
        if exc.response.status_code != 422 or found is None:
            raise
        field = _JOB_VARIABLE_FIELDS.get(found[1], found[1])
        raise errors.InvalidTask(field, f"outside the work pool's bounds: {found[2]}") from exc


class _StaleId(Exception):
    """The generic flow or the code block type or schema this gateway remembered is gone."""


def _no_routes() -> errors.PlatformUnavailable:
    return errors.PlatformUnavailable(
        "the Prefect server has no taskscheduler routes: start it with"
        " `python -m taskscheduler._prefect.server`"
    )


def _detail(response: httpx.Response) -> Any:
    """The ``detail`` of an error answer (None when it has none)."""
    try:
        return response.json().get("detail")
    except ValueError:
        return None


@functools.cache
def _flow_parameter_schema() -> dict[str, Any]:
    """The generic flow's parameter schema, so the Prefect UI's run form knows its fields."""
    from prefect.utilities.callables import parameter_schema

    from taskscheduler.runtime.flow import run_task

    return parameter_schema(run_task.fn).model_dump_for_openapi()
