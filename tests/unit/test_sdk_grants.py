"""The SDK checks the caller's grants before Prefect is asked to change anything.

Against a stand-in for the Prefect gateway (``_prefect.gateway.Gateway``) that answers the reads a
permission check needs (the task's deployment, a job's run, the task's current version) and
raises ``ReachedPrefect`` for any other call: a refusal must come before it, an allowed call
must get to it. The real server's side is in tests/integration/test_api.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskscheduler import audit, errors, grants, models
from taskscheduler._prefect.records import Deployment, Run, StoredVersion
from taskscheduler.sdk import AsyncTaskScheduler
from taskscheduler.settings import Settings

HELLO = "def main():\n    print('hi')\n"
DOCKER_ONLY = grants.Grants(pools=frozenset({"docker"}), secrets=frozenset())


class ReachedPrefect(Exception):
    """The SDK went on to a Prefect call beyond the reads a permission check needs."""


class ReadsOnly:
    """Stands in for ``_prefect.gateway.Gateway``: one task ``report`` in work pool ``in_pool``."""

    def __init__(self, in_pool: str | None, **spec: Any) -> None:
        self.spec = models.build_spec({"name": "report", "code": HELLO, **spec})
        self.deployment = Deployment(
            id=uuid.uuid4(),
            name="report",
            flow_id=uuid.uuid4(),
            version="v1",
            pool=in_pool,
            paused=False,
            scheduled=False,
            schedule=None,
            arguments={},
        )
        self.run = Run(
            id=uuid.uuid4(),
            deployment_id=self.deployment.id,
            state_type="SCHEDULED",
            state_name="Scheduled",
            parameters={},
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[object]:
        yield object()

    async def find_deployment(self, session: object, name: str) -> Deployment:
        if name != "report":
            raise errors.TaskNotFound(name)
        return self.deployment

    async def read_deployment(self, session: object, deployment_id: uuid.UUID) -> Deployment:
        assert deployment_id == self.deployment.id
        return self.deployment

    async def read_run(self, session: object, job_id: str) -> Run:
        return self.run

    async def current_versions(
        self, session: object, deployments: list[Deployment]
    ) -> list[StoredVersion | None]:
        assert deployments == [self.deployment]
        return [StoredVersion(spec=self.spec, version=1, sha256=self.spec.code_sha256)]

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            raise ReachedPrefect(name)

        return call


class Entries:
    """An audit sink that keeps entries in memory."""

    def __init__(self) -> None:
        self.entries: list[audit.AuditEntry] = []

    async def record(self, *entries: audit.AuditEntry) -> None:
        self.entries.extend(entries)


def _sdk(
    gateway: ReadsOnly, granted: grants.Grants | None = DOCKER_ONLY
) -> tuple[AsyncTaskScheduler, Entries]:
    sink = Entries()
    actor = audit.Actor(kind="token", id="1", name="writer", source="api")
    ts = AsyncTaskScheduler(Settings(), actor=actor, grants=granted, audit_sink=sink)
    ts._gateway = gateway  # type: ignore[assignment]
    return ts, sink


LATER = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


async def test_creating_in_the_default_pool_is_refused_before_prefect_and_audited() -> None:
    ts, sink = _sdk(ReadsOnly("docker"))
    with pytest.raises(errors.PermissionDenied, match="choose pool 'docker'"):
        await ts.create({"name": "new-task", "code": HELLO})
    with pytest.raises(errors.PermissionDenied, match="Secret block 'db-pw'"):
        await ts.create(
            {"name": "new-task", "code": HELLO, "pool": "docker", "secrets": {"DB": "db-pw"}}
        )
    assert [(e.action, e.outcome, e.task) for e in sink.entries] == [
        ("task.create", "forbidden", "new-task"),
        ("task.create", "forbidden", "new-task"),
    ]
    # Within the grants the SDK goes on to Prefect (first: do its Secret blocks exist?).
    with pytest.raises(ReachedPrefect, match=r"^require_secrets$"):
        await ts.create({"name": "new-task", "code": HELLO, "pool": "docker"})
    ts, _ = _sdk(ReadsOnly("docker"), grants.Grants(pools=frozenset({"docker"}), secrets=None))
    with pytest.raises(ReachedPrefect, match=r"^require_secrets$"):
        await ts.create(
            {"name": "new-task", "code": HELLO, "pool": "docker", "secrets": {"DB": "db-pw"}}
        )


async def test_creating_many_checks_every_task_before_prefect_and_audits_each() -> None:
    """A bulk create refused for one task is refused whole, before any Prefect call, naming
    the task by its place; every task named gets its audit row."""
    ts, sink = _sdk(ReadsOnly("docker"))
    ok = {"name": "first", "code": HELLO, "pool": "docker"}
    with pytest.raises(errors.PermissionDenied, match="may not use work pool 'process'"):
        await ts.create_many([ok, {"name": "second", "code": HELLO, "pool": "process"}])
    with pytest.raises(errors.InvalidTask, match=r"^tasks\.1\.cron: "):
        await ts.create_many([ok, {"name": "second", "code": HELLO, "cron": "99 * * * *"}])
    with pytest.raises(errors.InvalidTask, match="named more than once: first"):
        await ts.create_many([ok, ok])
    with pytest.raises(errors.InvalidTask, match="give 1 to 500 tasks, not 0"):
        await ts.create_many([])
    assert [(e.outcome, e.task) for e in sink.entries] == [
        ("forbidden", "first"),
        ("forbidden", "second"),
        ("invalid", "first"),
        ("invalid", "second"),
        ("invalid", "first"),
    ]
    assert all(e.action == "task.create" and "refused" in (e.detail or "") for e in sink.entries)
    # Within the grants the SDK goes on to Prefect (first: the Secret blocks named).
    with pytest.raises(ReachedPrefect, match="require_secrets"):
        await ts.create_many([ok, {**ok, "name": "second"}])


@pytest.mark.parametrize(
    ("pool", "spec", "changes", "refusal"),
    [
        ("process", {}, {"retries": 1}, "runs in work pool 'process'"),
        ("docker", {"pool": "docker"}, {"pool": "process"}, "may not use work pool 'process'"),
        ("docker", {"pool": "docker"}, {"pool": None}, "the default pool"),
        (
            "docker",
            {"pool": "docker", "secrets": {"DB": "db-pw"}},
            {"retries": 1},
            "Secret block 'db-pw'",
        ),
    ],
)
async def test_an_update_is_refused_by_the_pool_it_leaves_or_reaches_and_the_secrets_it_keeps(
    pool: str, spec: dict[str, Any], changes: dict[str, Any], refusal: str
) -> None:
    ts, sink = _sdk(ReadsOnly(pool, **spec))
    with pytest.raises(errors.PermissionDenied, match=refusal):
        await ts.update("report", changes)
    assert [(e.action, e.outcome, e.task) for e in sink.entries] == [
        ("task.update", "forbidden", "report")
    ]


async def test_an_update_that_drops_an_ungranted_secret_is_allowed() -> None:
    ts, _ = _sdk(ReadsOnly("docker", pool="docker", secrets={"DB": "db-pw"}))
    # Past the checks, the SDK asks Prefect whether the remaining Secret blocks exist.
    with pytest.raises(ReachedPrefect, match="require_secrets"):
        await ts.update("report", {"secrets": {}})


async def test_jobs_of_a_task_in_an_ungranted_pool_are_refused() -> None:
    ts, sink = _sdk(ReadsOnly("process"))
    with pytest.raises(errors.PermissionDenied, match="task 'report' runs in work pool 'process'"):
        await ts.run("report")
    with pytest.raises(errors.PermissionDenied, match="runs in work pool 'process'"):
        await ts.schedule("report", LATER)
    with pytest.raises(errors.PermissionDenied, match="runs in work pool 'process'"):
        await ts.reschedule(str(uuid.uuid4()), LATER)
    assert [(e.action, e.outcome) for e in sink.entries] == [
        ("task.run", "forbidden"),
        ("task.schedule", "forbidden"),
        ("job.reschedule", "forbidden"),
    ]


async def test_jobs_of_a_task_in_a_granted_pool_and_trusted_callers_go_ahead() -> None:
    ts, _ = _sdk(ReadsOnly("docker", pool="docker"))
    with pytest.raises(ReachedPrefect, match="create_run"):
        await ts.run("report")
    with pytest.raises(ReachedPrefect, match="move"):
        await ts.reschedule(str(uuid.uuid4()), LATER)
    trusted, _ = _sdk(ReadsOnly("process"), granted=None)
    with pytest.raises(ReachedPrefect, match="create_run"):
        await trusted.schedule("report", LATER)
