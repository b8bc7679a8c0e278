"""Small helpers shared by the integration tests: unique names, polling, the CLI, a client."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from taskscheduler import errors, models
from taskscheduler.sdk import TaskInput, TaskScheduler

if TYPE_CHECKING:
    from taskscheduler.platform import LocalPlatform

T = TypeVar("T")

VENV_BIN = Path(sys.executable).parent


def unique(prefix: str = "t") -> str:
    """A task name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class _Tracking(TaskScheduler):
    """A client that remembers the tasks it created."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []

    def create(self, task: TaskInput) -> models.Task:
        created = super().create(task)
        self.created.append(created.name)
        return created


@contextmanager
def scheduler() -> Iterator[TaskScheduler]:
    """A client for one test; the tasks it created stop ticking when the test ends, pass or fail.

    A failed test must not leave recurring tasks behind on a shared platform: on two cores a few
    process-lane tasks every 15 s are more than the machine, and the next tests starve.
    """
    client = _Tracking()
    with client:
        try:
            yield client
        finally:
            for name in client.created:
                with suppress(errors.TaskNotFound):
                    client.pause(name)


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 90.0,
    interval: float = 0.3,
    what: str | Callable[[], str] = "",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``
    (a callable ``what`` is asked then, so it can say what the probe last saw)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {said or probe}")
        time.sleep(interval)


def cli(
    *args: str, check: bool = True, cwd: Path | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``tasks`` command as a user would, in a child process; as ``token`` if given
    (else ``TASKS_TOKEN``, the admin token under ``pointing_at``)."""
    result = subprocess.run(
        [str(VENV_BIN / "tasks"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **({"TASKS_TOKEN": token} if token else {})},
        cwd=cwd,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tasks {' '.join(args)} failed: {result.stderr}")
    return result


def cli_json(*args: str, token: str | None = None) -> Any:
    """Run a ``tasks ... --json`` command and parse its one JSON document."""
    return json.loads(cli(*args, "--json", token=token).stdout)


def prefect(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Prefect's own CLI against the same server."""
    return subprocess.run(
        [str(VENV_BIN / "prefect"), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=cwd,
        timeout=180,
    )


def from_own_address(base_url: str, **options: Any) -> httpx.Client:
    """A client calling from a loopback address of its own (127.x.y.z), so what the API keeps
    per client address (the refusal windows of anonymous callers) is this test's alone."""
    address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=60, **options)


async def stored_in_prefect(name: str) -> tuple[list[str], list[str]]:
    """The deployments named ``name`` and the task-code documents of that task, in Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with get_client() as client:
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
        )
        response = await client.request(
            "POST",
            "/block_documents/filter",
            json={
                "block_documents": {"name": {"like_": f"{name}-v%"}},
                "block_types": {"slug": {"any_": ["task-code"]}},
            },
        )
    return [d.name for d in deployments], [d["name"] for d in response.json()]


def start_extra_worker(
    platform: LocalPlatform, lane: str, pool: str, name: str, log: Path
) -> subprocess.Popen[bytes]:
    """Another worker on ``pool``, started as the platform starts its own ``lane`` worker.

    The same program, environment and account (the run user, beneath which every job runs in
    its sandbox): a second worker that differed would prove nothing about the first, and files
    its jobs wrote as another user would be out of the other worker's jobs' reach.
    """
    command, env = platform.workers.lane_worker(lane, pool, name)
    with log.open("ab") as out:
        return subprocess.Popen(
            platform.workers.run_user.command(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=platform.settings.project_dir,
            start_new_session=True,
        )


STOP_TIMEOUT = 20.0  # s: a worker stopped or killed is reaped within this


def online_fast_worker(platform: LocalPlatform, name: str) -> subprocess.Popen[bytes]:
    """Another fast worker on the ``fast`` pool (``start_extra_worker``), once it is online."""
    from taskscheduler.platform import DEFAULT_POOL_TYPE, FAST_POOL

    platform.workers.server.ensure_work_pool(FAST_POOL, DEFAULT_POOL_TYPE)
    log = platform.log_dir / f"{name}.log"
    process = start_extra_worker(platform, "fast", FAST_POOL, name, log)
    wait_for(
        lambda: platform._worker_online(FAST_POOL, name) or process.poll() is not None,
        timeout=60,
        what=f"fast worker {name}",
    )
    assert process.poll() is None, log.read_text()[-3000:]
    return process


@contextmanager
def extra_fast_worker(platform: LocalPlatform, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``online_fast_worker``, stopped afterwards (SIGTERM, then SIGKILL of its group)."""
    process = online_fast_worker(platform, name)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)


def worker_of(ts: TaskScheduler, job_id: str, workers: tuple[str, ...]) -> str | None:
    """Which of ``workers`` ran the job, by the line the worker that won the claim writes into
    the job's logs (the process lane's "Started by worker '<name>'", the fast lane's "in fast
    worker <name>"); Prefect's "submitting" line may come from a worker that lost the race."""
    text = "\n".join(line.message for line in ts.logs(job_id))
    found = [
        name
        for name in workers
        if f"Started by worker '{name}'" in text or f"in fast worker {name}" in text
    ]
    assert len(found) <= 1, (job_id, found)
    return found[0] if found else None


def settled(job: models.Job) -> bool:
    """Whether a job has ended for good. Crashed counts as failed (``is_final``), but the
    watchdog may still retry it: a probe that stopped there would judge a job mid-recovery."""
    return job.state.is_final and job.state_name != "Crashed"


def finished(
    ts: TaskScheduler, job_id: str, timeout: float = 60.0, interval: float = 0.3
) -> models.Job:
    """The job once it has ended for good (``settled``): past a Crashed the watchdog retries."""
    return wait_for(
        lambda: settled(j := ts.job(job_id)) and j,
        timeout=timeout,
        interval=interval,
        what=f"job {job_id} to end",
    )
