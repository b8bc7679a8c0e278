"""What every operation of the SDK shares: settings, gateway, grants, the audit of each call and
the reads of a task's current definition.

``audited`` wraps each state-changing operation: one audit entry per call, refused calls
included. The operations themselves live in ``tasks``, ``schedules`` and ``jobs``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler import audit, errors, grants, models, store
from taskscheduler._prefect import gateway, mapping
from taskscheduler.settings import Settings, get_settings

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="SchedulerCore")
TaskInput = models.TaskSpec | dict[str, Any]

_UNRESTRICTED = grants.UNRESTRICTED

# The audit entry of the call in progress, so a method can add what only it knows (the code
# hash before an update) without threading it through every signature.
_pending: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "taskscheduler_audit_pending", default=None
)
_log = logging.getLogger(__name__)


def now() -> dt.datetime:
    """The current time, in UTC."""
    return dt.datetime.now(dt.UTC)


def spec_of(value: TaskInput) -> models.TaskSpec:
    """A task definition, built from a dict when not one already."""
    return value if isinstance(value, models.TaskSpec) else models.build_spec(value)


def audited(
    action: str,
) -> Callable[
    [Callable[Concatenate[S, P], Awaitable[T]]],
    Callable[Concatenate[S, P], Awaitable[T]],
]:
    """Append one audit entry per call of a state-changing method, refused calls included."""

    def decorate(
        method: Callable[Concatenate[S, P], Awaitable[T]],
    ) -> Callable[Concatenate[S, P], Awaitable[T]]:
        async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            fields: dict[str, str | None] = {"task": None, "job": None}
            fields["job" if action.startswith("job.") else "task"] = audit_target(
                args[0] if args else None
            )
            token = _pending.set(fields)
            try:
                result = await method(self, *args, **kwargs)
            except Exception as exc:
                await self._record_refused(action, exc, [fields], str(exc))
                raise
            finally:
                _pending.reset(token)
            if isinstance(result, models.Task):
                fields["task"] = result.name
                fields["code_sha256_after"] = result.code_sha256
            elif isinstance(result, models.Job):
                if fields["job"] is not None and fields["job"] != result.id:
                    fields["detail"] = f"replaced by job {result.id}"
                else:
                    fields["job"] = result.id
                fields["task"] = fields["task"] or result.task
            await self._record(action, "ok", fields)
            return result

        functools.update_wrapper(call, method)
        return call

    return decorate


def audit_target(value: object) -> str | None:
    """The task name or job id a call is about, from its first argument."""
    if isinstance(value, models.TaskSpec):
        return value.name
    if isinstance(value, dict):
        name = value.get("name")
        return name[:200] if isinstance(name, str) else None
    return value[:200] if isinstance(value, str) else None


def note(**fields: str | None) -> None:
    """Add to the audit entry of the call in progress."""
    pending = _pending.get()
    if pending is not None:
        pending.update(fields)


class SchedulerCore:
    """Settings, gateway, grants and audit of ``AsyncTaskScheduler``, and its shared reads.

    ``actor`` is who acts (default: the local user, as the SDK), ``grants`` which work pools and
    Secret blocks its tasks may use (default: every one, for code trusted in-process) and
    ``audit_sink`` where each state-changing call is recorded (default: the audit table of the
    platform's database); the REST API passes the token's identity and grants, its request id,
    its shared sink and its open ``PrefectConnection``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        actor: audit.Actor | None = None,
        grants: grants.Grants | None = None,
        audit_sink: audit.AuditSink | None = None,
        request_id: str | None = None,
        connection: gateway.Connection | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._gateway = gateway.Gateway(self.settings, connection)
        self.actor = actor or audit.Actor.local(self.settings)
        self.grants = grants or _UNRESTRICTED
        self.request_id = request_id
        self._audit_sink = audit_sink
        self._owned_engine: AsyncEngine | None = None

    async def _record(
        self, action: str, outcome: str, fields: dict[str, str | None], detail: str | None = None
    ) -> None:
        values = dict(fields)
        if detail is not None:
            values["detail"] = detail
        await self._record_each(action, outcome, [values])

    async def _record_refused(
        self,
        action: str,
        exc: Exception,
        each: Sequence[dict[str, str | None]],
        detail: str,
    ) -> None:
        """Audit a refused call, one entry per item of ``each``; a failure to write them is
        logged, not raised: the caller must see the original error."""
        try:
            await self._record_each(
                action, audit.outcome_of(exc), [{**fields, "detail": detail} for fields in each]
            )
        except Exception:  # noqa: BLE001 - the caller must see the original error
            _log.exception("could not write the audit entries of a refused %s", action)

    async def _record_each(
        self, action: str, outcome: str, each: Sequence[dict[str, str | None]]
    ) -> None:
        """One audit entry per item of ``each`` (the fields of one), written together."""
        if self._audit_sink is None:
            self._owned_engine = store.create_engine(self.settings, pooled=False)
            self._audit_sink = audit.DatabaseSink(self._owned_engine)
        await self._audit_sink.record(
            *(
                audit.AuditEntry.of(
                    self.actor, action, outcome, request_id=self.request_id, **fields
                )
                for fields in each
            )
        )

    async def aclose(self) -> None:
        """Release the database engine of the default audit sink, if one was opened."""
        if self._owned_engine is not None:
            await self._owned_engine.dispose()
            self._owned_engine = None

    async def health(self) -> None:
        """Raise ``PlatformUnavailable`` unless the Prefect server answers healthy."""
        async with self._gateway.session() as session:
            await self._gateway.check_health(session)

    # ---- reading a task ------------------------------------------------------------------------

    async def _current(
        self, session: gateway.Session, deployment: gateway.Deployment
    ) -> tuple[models.TaskSpec, int]:
        """The task's definition and version number from its latest code version."""
        (stored,) = await self._gateway.current_versions(session, [deployment])
        if stored is None:
            raise errors.InvalidTask(
                "name",
                f"{deployment.name!r} was not created by this platform; "
                "change it where it was defined (prefect deploy)",
            )
        return stored.spec, stored.version

    async def _definition(
        self, session: gateway.Session, deployment: gateway.Deployment
    ) -> models.TaskSpec | None:
        """The task's definition, or None for a deployment this platform did not create."""
        (stored,) = await self._gateway.current_versions(session, [deployment])
        return stored.spec if stored is not None else None

    async def _read_task(self, session: gateway.Session, name: str, *, detail: bool) -> models.Task:
        deployment = await self._gateway.find_deployment(session, name)
        (stored,) = await self._gateway.current_versions(session, [deployment])
        task = mapping.to_task(deployment, stored)
        if detail:
            await self._add_detail(session, deployment, task, stored)
        return task

    async def _add_detail(
        self,
        session: gateway.Session,
        deployment: gateway.Deployment,
        task: models.Task,
        stored: gateway.StoredVersion | None,
    ) -> None:
        """The next five runs, the last job and every code version of one task."""
        gw = self._gateway
        task.next_runs = await gw.upcoming(session, deployment.id, limit=5)
        task.last_job = await gw.last_job(session, deployment)
        if stored is not None:
            task.versions = await gw.read_versions(session, deployment.name)
