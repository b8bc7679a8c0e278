"""The sandbox lane: every job in a fresh sandbox of its own, held to its limits.

Each test runs real jobs on the session platform's sandbox worker (a fast worker in single-use
mode with cgroups delegated by ``up``). The job semantics it shares with the fast lane —
retries, timeout, cancel, misfire, logs — are the fast lane's tests, run on both pools
(``test_fastlane``); these are what only this lane promises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskscheduler import InvalidTask, JobState, TaskScheduler, models
from taskscheduler.platform import SANDBOX_POOL, LocalPlatform
from tests.integration.helpers import scheduler, unique, wait_for

pytestmark = pytest.mark.timeout(600)

# What a job sees of its sandbox, printed as one JSON line.
PROBE = """
import json, os, sys, time

def main(hold=0, marker=None):
    seen = {
        "left_in_tmp": sorted(f for f in os.listdir("/tmp") if f.startswith("mine-")),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "pid": os.getpid(),
        "uid": os.getuid(),
        "prefect_loaded": "prefect" in sys.modules,
        "cgroup": open("/proc/self/cgroup").read().split(),
    }
    with open("/tmp/mine-" + str(os.getpid()), "w") as f:
        f.write("left behind")
    if marker:
        open(marker, "w").close()
    try:
        open("/usr/lib/os-release-copy", "w")
        seen["root_writable"] = True
    except OSError:
        seen["root_writable"] = False
    time.sleep(hold)
    print("SEEN " + json.dumps(seen))
"""


@pytest.fixture(scope="module")
def ts(platform: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


def sandbox_task(ts: TaskScheduler, code: str, **extra: Any) -> str:
    name = unique("sandbox")
    ts.create({"name": name, "code": code, "pool": SANDBOX_POOL, **extra})
    return name


def finished(ts: TaskScheduler, job_id: str, timeout: float = 90.0) -> models.Job:
    return wait_for(
        lambda: (j := ts.job(job_id)).state.is_final and j, timeout=timeout, what="the job to end"
    )


def seen(ts: TaskScheduler, job: models.Job) -> dict[str, Any]:
    lines = [line.message for line in ts.logs(job.id) if line.message.startswith("SEEN ")]
    assert len(lines) == 1, [line.message for line in ts.logs(job.id)]
    return json.loads(lines[0].removeprefix("SEEN "))  # type: ignore[no-any-return]


def test_each_job_gets_a_fresh_sandbox_that_no_other_job_shares(ts: TaskScheduler) -> None:
    """Jobs one after another find none of their predecessors' files; each runs unprivileged,
    on a read-only root, without Prefect loaded, seeing no process but its own sandbox's."""
    name = sandbox_task(ts, PROBE)
    jobs = [finished(ts, ts.run(name).id) for _ in range(3)]
    assert [j.state for j in jobs] == [JobState.COMPLETED] * 3, [j.detail for j in jobs]
    for job in jobs:
        what = seen(ts, job)
        assert what["left_in_tmp"] == [], what  # nothing left by an earlier job
        assert what["processes"] == sorted({1, what["pid"]}), what  # bubblewrap's init, itself
        assert what["uid"] != 0 and not what["root_writable"] and not what["prefect_loaded"]
        logs = "\n".join(line.message for line in ts.logs(job.id))
        assert "in a fresh sandbox" in logs and "512 MiB, 1 CPU, 256 processes" in logs, logs


def test_jobs_running_at_once_see_neither_each_others_files_nor_processes(
    ts: TaskScheduler, job_dir: Path
) -> None:
    first_started = job_dir / "first-started"
    name = sandbox_task(ts, PROBE)
    first = ts.run(name, {"hold": 4, "marker": str(first_started)})
    wait_for(first_started.exists, timeout=60, what="the first job to be running")
    second = finished(ts, ts.run(name).id)
    first_done = finished(ts, first.id)
    assert {first_done.state, second.state} == {JobState.COMPLETED}
    for job in (first_done, second):
        what = seen(ts, job)
        assert what["left_in_tmp"] == [] and len(what["processes"]) <= 2, what


def test_a_job_over_its_memory_limit_is_killed_and_retried_in_a_new_sandbox(
    ts: TaskScheduler,
) -> None:
    code = "def main():\n    hog = bytearray(200 * 1024 * 1024)\n    return len(hog)\n"
    name = sandbox_task(ts, code, memory="64m", retries=1, retry_delay="1s")
    job = finished(ts, ts.run(name).id)
    assert job.state is JobState.FAILED, job
    logs = "\n".join(line.message for line in ts.logs(job.id))
    assert "64 MiB" in logs and "Retry 1/1" in logs, logs
    # With cgroups (a platform started as root, as in CI) the kernel kills it; without, the
    # sandbox's capped address space makes the allocation fail.
    if os.geteuid() == 0:
        assert job.state_name == "OutOfMemory", job
    else:
        assert "MemoryError" in (job.error or ""), job


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the process limit is a cgroup's: a platform started as root (CI)"
)
def test_a_job_cannot_start_more_processes_and_threads_than_its_limit(ts: TaskScheduler) -> None:
    code = (
        "import threading\n"
        "def main():\n"
        "    stop, started = threading.Event(), 0\n"
        "    try:\n"
        "        for _ in range(2000):\n"
        "            threading.Thread(target=stop.wait, daemon=True).start()\n"
        "            started += 1\n"
        "    except RuntimeError as exc:\n"
        "        print(f'refused after {started}: {exc}')\n"
        "    stop.set()\n"
        "    return started\n"
    )
    job = finished(ts, ts.run(sandbox_task(ts, code)).id)
    assert job.state is JobState.COMPLETED, job
    results = [line.message for line in ts.logs(job.id) if line.message.startswith("Result: ")]
    assert results and int(results[0].removeprefix("Result: ")) < 256, results


def test_limits_beyond_the_pools_bounds_are_refused(ts: TaskScheduler) -> None:
    for field, value in (("memory", "8g"), ("cpus", 4)):
        with pytest.raises(InvalidTask, match=f"{field}.*sandbox pool's bounds"):
            sandbox_task(ts, "def main():\n    return 1\n", **{field: value})
