"""The local platform supervisor, for real: PostgreSQL, Prefect server, process worker."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import WorkerStatus

from taskscheduler import models
from taskscheduler.models import JobState
from taskscheduler.platform import FAST_POOL, SERVER, SERVICES, LocalPlatform, _descendants
from tests.integration.conftest import pointing_at, throwaway_platform
from tests.integration.helpers import (
    extra_fast_worker,
    scheduler,
    settled,
    unique,
    wait_for,
    worker_of,
)

SLEEPY_FLOW = """
import time

from prefect import flow


@flow
def sleepy(seconds: float = 600) -> None:
    time.sleep(seconds)
"""


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (killed children linger as zombies)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_server_answers_health_and_serves_the_ui(platform: LocalPlatform) -> None:
    """The API's health check and the UI both answer on the configured port."""
    assert httpx.get(f"{platform.api_url}/health").status_code == 200
    assert httpx.get(platform.ui_url).status_code == 200
    assert platform.status().up


def test_process_pool_exists_with_a_live_worker(platform: LocalPlatform) -> None:
    """``up`` leaves a ``process`` pool with our worker online on it."""
    with SyncPrefectClient(platform.api_url, auth_string=platform.prefect_auth_string) as client:
        pool = client.read_work_pool("process")
        workers = client.read_workers_for_work_pool("process")
    assert pool.type == "process"
    assert pool.base_job_template, "the pool has the process worker's default job template"
    assert any(w.name == platform.worker_name and w.status == WorkerStatus.ONLINE for w in workers)


def test_block_types_are_registered(platform: LocalPlatform) -> None:
    """``up`` registers our block types, so code blocks can be saved at once."""
    from taskscheduler._prefect.blocks import TaskCode

    with SyncPrefectClient(platform.api_url, auth_string=platform.prefect_auth_string) as client:
        block_type = client.read_block_type_by_slug(TaskCode.get_block_type_slug())
    assert block_type.slug == TaskCode.get_block_type_slug()


def test_up_again_keeps_the_running_processes(platform: LocalPlatform) -> None:
    """A second ``up`` on a running platform is quick and starts nothing new."""
    before = platform.status()
    started = time.monotonic()

    after = platform.up()

    assert time.monotonic() - started < 15
    assert (after.server_pid, after.worker_pid) == (
        before.server_pid,
        before.worker_pid,
    )


async def test_prefect_client_in_tests_talks_to_the_session_server(
    platform: LocalPlatform,
) -> None:
    """Inside the session, Prefect's own client and ``PREFECT_API_URL`` name our server."""
    assert os.environ["PREFECT_API_URL"] == platform.api_url
    async with get_client() as client:
        assert str(client.api_url).rstrip("/") == platform.api_url
        assert await client.api_healthcheck() is None


def test_a_worker_that_dies_by_itself_is_started_again(platform: LocalPlatform) -> None:
    """Prefect's worker exits for good on some server errors; its respawn wrapper restarts it
    and the pool has its worker back, under the same supervised PID."""
    from taskscheduler.platform import WORKER, _cmdline, _descendants
    from taskscheduler.platform.catalogue import WORKERS_MODULE

    wrapper = platform._live_pid(WORKER)
    assert wrapper is not None

    def is_worker(pid: int) -> bool:  # the worker itself, not its respawn wrapper or setpriv
        return _cmdline(pid)[1:3] == ["-m", WORKERS_MODULE]

    workers = [p for p in _descendants(wrapper) if is_worker(p)]
    assert len(workers) == 1, [_cmdline(p) for p in _descendants(wrapper)]
    os.kill(workers[0], 9)
    wait_for(
        lambda: any(p != workers[0] and is_worker(p) for p in _descendants(wrapper)),
        timeout=30,
        what="a new worker process under the wrapper",
    )
    assert platform._live_pid(WORKER) == wrapper
    since = time.time()

    def beat_again() -> bool:
        with SyncPrefectClient(
            platform.api_url, auth_string=platform.prefect_auth_string
        ) as client:
            found = client.read_workers_for_work_pool("process")
        return any(
            w.name == platform.worker_name
            and w.last_heartbeat_time is not None
            and w.last_heartbeat_time.timestamp() > since
            for w in found
        )

    wait_for(beat_again, timeout=120, what="a heartbeat of the restarted worker")
    assert "respawn: " in platform.log_path(WORKER).read_text()


def test_status_command_reports_a_running_platform(platform: LocalPlatform) -> None:
    """``python -m taskscheduler.platform status`` exits 0 and says where to look."""
    result = subprocess.run(
        [sys.executable, "-m", "taskscheduler.platform", "status"],
        env=platform.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"PREFECT_API_URL={platform.api_url}" in result.stdout


@pytest.mark.slow
def test_restart_keeps_data_and_down_leaves_no_process(
    fresh_platform: LocalPlatform, job_dir: Path
) -> None:
    """``down`` ends every process, flow runs in flight included; ``up`` finds the data again."""
    pool_name = f"survivor-{secrets.token_hex(4)}"
    flow_dir = job_dir / "flows"  # where the run user's sandboxed flow run can read it
    flow_dir.mkdir()
    (flow_dir / "sleepy.py").write_text(SLEEPY_FLOW)

    with SyncPrefectClient(
        fresh_platform.api_url, auth_string=fresh_platform.prefect_auth_string
    ) as client:
        client.create_work_pool(WorkPoolCreate(name=pool_name, type="process"))
    flow_run_pids = start_sleepy_flow_run(fresh_platform, flow_dir)
    supervised = fresh_platform.processes()
    assert set(flow_run_pids) <= set(supervised)

    fresh_platform.down()

    survivors = [pid for pid in supervised if running(pid)]
    assert survivors == [], f"processes outlived down(): {survivors}"
    assert not list(fresh_platform.settings.state_dir.glob("*.pid"))
    assert not fresh_platform.status().server_healthy

    fresh_platform.up()

    with SyncPrefectClient(
        fresh_platform.api_url, auth_string=fresh_platform.prefect_auth_string
    ) as client:
        assert client.read_work_pool(pool_name).name == pool_name
        assert client.read_work_pool("process").type == "process"
    assert not set(fresh_platform.processes()) & set(supervised)


def start_sleepy_flow_run(platform: LocalPlatform, flow_dir: Path) -> list[int]:
    """Deploy a flow that sleeps, run it on the platform's worker, return its processes."""
    from prefect import Flow, flow
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings(
        updates={
            PREFECT_API_URL: platform.api_url,
            PREFECT_API_AUTH_STRING: platform.prefect_auth_string,
        }
    ):
        # Called outside an event loop these return values, not coroutines.
        sleepy = flow.from_source(source=str(flow_dir), entrypoint="sleepy.py:sleepy")
        assert isinstance(sleepy, Flow)
        sleepy.deploy(name="sleepy", work_pool_name="process", build=False, push=False)
        flow_run = run_deployment("sleepy/sleepy", timeout=0)
        assert isinstance(flow_run, FlowRun)
        with SyncPrefectClient(
            platform.api_url, auth_string=platform.prefect_auth_string
        ) as client:

            def started() -> bool:
                state = client.read_flow_run(flow_run.id).state
                return state is not None and state.is_running()

            wait_for(started, timeout=120, interval=0.2, what="the flow run to start")
    server_and_worker = {platform.status().server_pid, platform.status().worker_pid}
    pids = [pid for pid in platform.processes() if pid not in server_and_worker]
    assert pids, "the flow run's process is a descendant of the worker"
    return pids


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api_processes(server_pid: int) -> list[int]:
    """The API processes uvicorn started below the Prefect server's (``--workers N``)."""
    found = []
    for pid in _descendants(server_pid):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
                found.append(pid)
    return found


@pytest.mark.timeout(900)
def test_two_api_processes_and_two_fast_workers_start_each_job_once_under_load(
    tmp_path: Path, job_dir: Path
) -> None:
    """``TASKS_API_WORKERS=2``: Prefect's migrations and block types are done once, before the
    API processes start (started together they raced for them, and 2 of 5 starts here stopped
    the server); the services run apart. Then the scale-out shape of issue 14 under load: two
    API processes carrying the set-based routes and two fast workers, 400 jobs due over 20 s
    (1,200 a minute): each started once, both workers and both API processes took part."""
    tuned_env = {
        "TASKS_API_WORKERS": "2",
        "TASKS_REDIS_URL": "redis://127.0.0.1:6379/12",
        "TASKS_CANARY_EVERY": "0",
    }
    with (
        throwaway_platform(tmp_path / "tuned", tuned_env) as tuned,
        pointing_at(tuned),
        scheduler() as ts,
    ):
        assert tuned._live_pid(SERVICES) is not None, "the services run in their own process"
        with SyncPrefectClient(tuned.api_url, auth_string=tuned.prefect_auth_string) as client:
            assert client.read_block_type_by_slug("secret").slug == "secret"
        name = unique("tuned")
        hits = job_dir / "hits"
        code = (
            f"def main(i=-1):\n    with open({str(hits)!r}, 'a') as f:\n"
            "        f.write(f'{i}\\n')\n"
        )
        ts.create({"name": name, "code": code, "pool": FAST_POOL})
        job = ts.wait(ts.run(name).id, timeout=120)
        assert job.state is JobState.COMPLETED, (job.state_name, job.detail)

        server = tuned._live_pid(SERVER)
        assert server is not None
        apis = api_processes(server)
        assert len(apis) == 2, apis
        second = unique("second")
        with extra_fast_worker(tuned, second):
            before = {pid: cpu_seconds(pid) for pid in apis}
            first = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
            jobs = [{"at": (first + dt.timedelta(milliseconds=50 * i)).isoformat(),
                     "parameters": {"i": i}} for i in range(400)]  # fmt: skip
            ids = set(ts.add_jobs(name, {"jobs": jobs}).job_ids)

            def all_ended() -> list[models.Job] | None:
                found = [j for j in ts.jobs(task=name, limit=500) if j.id in ids]
                return found if len(found) == len(ids) and all(map(settled, found)) else None

            # Reading 400 jobs costs the server too: not before the last is due.
            time.sleep(max(0.0, (first - dt.datetime.now(dt.UTC)).total_seconds()) + 25)
            ended = wait_for(all_ended, timeout=300, interval=5.0, what="the 400 jobs ended")
            used = {pid: cpu_seconds(pid) - before[pid] for pid in apis}
        workers = (tuned.workers.fast_name, second)
        ran_by: Counter[str | None] = Counter()
        for j in ended:  # read job by job until both workers are seen to have run some
            ran_by[worker_of(ts, j.id, workers)] += 1
            if all(ran_by[w] for w in workers):
                break
        delays = sorted(
            (j.start_time - j.scheduled_time).total_seconds()
            for j in ended
            if j.start_time and j.scheduled_time
        )
        print(
            f"SCALE-OUT jobs=400 ran_by (until both seen)={dict(ran_by)} api_cpu_s="
            f"{[round(u, 2) for u in used.values()]} delay_p50={delays[200]:.3f}"
            f" p99={delays[395]:.3f} max={delays[-1]:.3f}"
        )
        assert [j.state for j in ended] == [JobState.COMPLETED] * 400
        assert all(j.attempts == 1 for j in ended), "run once each"
        assert Counter(hits.read_text().split()) == Counter(
            [*(str(i) for i in range(400)), "-1"]
        ), "each job's code ran once"
        assert ran_by[second] > 0 and ran_by[workers[0]] > 0, ran_by
        # Each API process did a tenth of their work at least: an idle one does next to none.
        assert min(used.values()) >= 0.1 * sum(used.values()), used
