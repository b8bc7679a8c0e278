"""A throwaway platform for one benchmark configuration: own database, port, Redis db, state."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from taskscheduler.platform import LocalPlatform, catalogue, drop_database, free_port
from taskscheduler.settings import Settings

# A benchmark may run on a machine others load too: start-up gets generous bounds (a slow
# start is not what is measured), the scenarios none. The bounds live in the catalogue of
# services, which every start reads anew.
catalogue.SERVER_TIMEOUT = max(catalogue.SERVER_TIMEOUT, 600.0)
catalogue.WORKER_TIMEOUT = max(catalogue.WORKER_TIMEOUT, 300.0)

# Prefect's own defaults for the stock baseline: a worker polls every 10 s and claims 10 s ahead,
# and the (idle) fast worker polls rarely so it does not tax the stock server.
STOCK_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "10",
    "PREFECT_WORKER_PREFETCH_SECONDS": "10",
    "TASKS_FAST_POLL_INTERVAL": "30",
    "TASKS_FAST_WATCH_INTERVAL": "30",
}


@contextlib.contextmanager
def jobs_dir() -> Iterator[Path]:
    """A directory the benchmark's jobs may write (their record of each execution), removed
    afterwards. Jobs run sandboxed as the run user: they write only where the platform's
    ``sandbox_writable`` says, and the run user must reach it (root's temporary directories
    it cannot)."""
    path = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def platform(
    state_dir: Path,
    *,
    topology: str,
    redis_db: int,
    extra: dict[str, str] | None = None,
    writable: Path | None = None,
) -> Iterator[LocalPlatform]:
    """``topology``: "stock" (Prefect defaults), "tuned-1" or "tuned-2" (API processes);
    ``writable``: a directory its jobs may write."""
    base = make_url(Settings().database_url)
    database = base.set(database=f"tasks_bench_{secrets.token_hex(4)}")
    settings = Settings(
        database_url=database.render_as_string(hide_password=False),
        prefect_port=free_port(),
        state_dir=state_dir,
        sandbox_writable=[writable] if writable else [],
    )
    env: dict[str, str] = {}
    if topology == "stock":
        env.update(STOCK_ENV)
    else:
        workers = topology.rsplit("-", 1)[1]
        env.update(
            TASKS_TUNED="true",
            TASKS_API_WORKERS=workers,
            TASKS_REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        )
    env.update(extra or {})
    with contextlib.ExitStack() as stack:
        paths = []
        if COMMIT in env:
            paths.append(str(stack.enter_context(source_at(env[COMMIT]))))
        if any(name in env for name in EARLIER):
            paths.append(str(Path(__file__).parent / "before"))
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        started = LocalPlatform(settings, extra_env=env)
        try:
            started.up()
            yield started
        finally:
            try:
                started.down()
            finally:
                drop_database(settings.database_url)


# ``tuned-2@BENCH_COMMIT=REV``: every process of the platform runs the package as it was at
# commit REV (its ``src`` first on their PYTHONPATH), to measure a change no switch turns off
# side by side with the package as it is. The platform is started by today's package, so REV
# must be recent enough to be started the same way.
COMMIT = "BENCH_COMMIT"


@contextlib.contextmanager
def source_at(rev: str) -> Iterator[Path]:
    """The ``src`` directory of the repository at ``rev``, in a temporary directory every user
    may read (the run user's processes import it too)."""
    repo = Path(__file__).resolve().parent.parent
    tree = Path(tempfile.mkdtemp(prefix="bench-src-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", rev, "src"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        for path in [tree, *tree.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield tree / "src"
    finally:
        shutil.rmtree(tree, ignore_errors=True)


# ``tuned-2@BENCH_ZOMBIE_AUTOMATION=true``: the platform as it was before 2026-12-02, with
# Prefect's documented "detect zombie flows" automation beside the watchdog's crash rule, to
# measure what that automation cost per job side by side with the platform without it.
ZOMBIE_AUTOMATION = "BENCH_ZOMBIE_AUTOMATION"


async def add_zombie_automation(after_seconds: float) -> None:
    """Create the automation the platform used to create (its definition of 2026-12-01)."""
    import datetime as dt

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    automation = AutomationCore(
        name="bench: crash zombie jobs (retired)",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=dt.timedelta(seconds=after_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="No heartbeat")],
    )
    async with get_client() as client:
        await client.create_automation(automation)


# ``tuned-2@BENCH_NAGLE=on``, ``@BENCH_PENDULUM=on``, ``@BENCH_EVENT_READS=per-run``,
# ``@BENCH_CSRF=prefect``, ``@BENCH_DISTRIBUTOR=prefect``: the platform as it was before a
# change, to measure the change side by side with it (``before/sitecustomize.py``): every answer
# on a kept-alive connection held 40 ms by Nagle's algorithm; Prefect's pendulum timestamps bound
# as they are; the related resources of the fast lane's events read by Prefect run by run;
# Prefect's CSRF check, a read a call; Prefect's events distributor, an event a read;
# ``@BENCH_RECENT=prefect``: Prefect's recent-deployments scheduler re-making new tasks' runs.
EARLIER = (
    "BENCH_NAGLE",
    "BENCH_PENDULUM",
    "BENCH_EVENT_READS",
    "BENCH_CSRF",
    "BENCH_DISTRIBUTOR",
    "BENCH_RECENT",
)
