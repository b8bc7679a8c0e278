"""Jobs of the ``docker`` pool: each in a hardened container of its own, on a real engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskscheduler import JobState, TaskScheduler, errors
from taskscheduler.platform import LocalPlatform, _descendants
from taskscheduler.platform.catalogue import DOCKER_WORKER
from tests.integration.helpers import scheduler, unique, wait_for

pytestmark = pytest.mark.slow

# Runs inside the job: what it can see of its own confinement, printed as one JSON line.
PROBE = """
import errno, json, os

def main():
    try:
        open("/opt/taskscheduler/flows/probe.txt", "w")
        root = "writable"
    except OSError as exc:
        root = "read-only" if exc.errno == errno.EROFS else f"error {exc.errno}"
    with open("/tmp/probe.txt", "w") as tmp:
        tmp.write("ok")
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    facts = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "root": root,
        "tmp": "writable",
        "cap_eff": status["CapEff"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
    }
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        if os.path.exists(limit):  # cgroup v2, else v1
            facts["memory_max"] = open(limit).read().strip()
    print("PROBE " + json.dumps(facts))
    return "probed"
"""

# Says when it starts and when it ends, with its run's id: one of each for a job run once.
STEPS = """
import time
from prefect.runtime import flow_run

def main(seconds=15):
    print(f"STEP start {flow_run.id}")
    time.sleep(seconds)
    print(f"STEP end {flow_run.id}")
    return "slept"
"""

SLEEP = "import time\ndef main():\n    print('sleeping')\n    time.sleep(300)\n"


@pytest.fixture(scope="module")
def ts(docker_platform: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


def containers(job_id: str) -> list[dict[str, Any]]:
    """``docker inspect`` of the containers of one job (by Prefect's flow-run label)."""
    found = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label=io.prefect.flow-run-id={job_id}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    if not found:
        return []
    inspected = subprocess.run(
        ["docker", "inspect", *found], capture_output=True, text=True, check=False, timeout=30
    )
    return json.loads(inspected.stdout) if inspected.returncode == 0 else []


def test_job_runs_in_a_container_as_non_root_on_a_read_only_root(ts: TaskScheduler) -> None:
    """The job's own view: uid 10001, read-only root, writable /tmp, no capabilities."""
    name = unique("dock")
    ts.create({"name": name, "code": PROBE, "pool": "docker", "memory": "384m"})
    job = ts.wait(ts.run(name).id, timeout=180)
    messages = [line.message for line in ts.logs(job.id)]
    assert job.state is JobState.COMPLETED, (job, messages[-10:])
    assert "Result: 'probed'" in messages
    probe = json.loads(next(m for m in messages if m.startswith("PROBE "))[len("PROBE ") :])
    assert probe["uid"] == 10001 and probe["gid"] == 10001, probe
    assert probe["root"] == "read-only", probe
    assert probe["tmp"] == "writable"
    assert int(probe["cap_eff"], 16) == 0, "every capability is dropped"
    assert probe["no_new_privs"] == "1"
    assert probe["memory_max"] == str(384 * 1024 * 1024), "the task's memory limit applies"
    wait_for(lambda: not containers(job.id), timeout=30, what="the container to be removed")


def test_failing_job_is_retried_in_its_container_then_fails(ts: TaskScheduler) -> None:
    name = unique("dock")
    code = "def main():\n    raise ValueError('boom in a box')\n"
    ts.create({"name": name, "code": code, "pool": "docker", "retries": 1, "retry_delay": "1s"})
    job = ts.wait(ts.run(name).id, timeout=180)
    assert job.state is JobState.FAILED, job
    assert job.attempts == 2, job
    assert any("boom in a box" in line.message for line in ts.logs(job.id))


def test_timeout_ends_the_job_and_its_container(ts: TaskScheduler) -> None:
    name = unique("dock")
    ts.create({"name": name, "code": SLEEP, "pool": "docker", "timeout": "3s"})
    job = ts.wait(ts.run(name).id, timeout=180)
    assert job.state is JobState.FAILED, job
    assert "timed out" in " ".join(line.message for line in ts.logs(job.id)).lower()
    wait_for(lambda: not containers(job.id), timeout=30, what="the container to be removed")


def test_cancelling_a_running_job_stops_its_hardened_container(ts: TaskScheduler) -> None:
    """While it runs, the container carries the template's hardening and the job's labels."""
    name = unique("dock")
    ts.create({"name": name, "code": SLEEP, "pool": "docker", "cpus": 0.5})
    job = ts.run(name)
    found = wait_for(
        lambda: [c for c in containers(job.id) if c["State"]["Running"]],
        timeout=120,
        what="the job's container to run",
    )
    wait_for(lambda: ts.job(job.id).state is JobState.RUNNING, timeout=60, what="Running")
    (container,) = found
    host = container["HostConfig"]
    labels = container["Config"]["Labels"]
    assert labels["io.prefect.flow-run-id"] == job.id
    assert labels["io.prefect.deployment-name"] == name
    assert labels["io.taskscheduler.task"] == name
    assert container["Config"]["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Privileged"] is False
    # No network at all; the job gateway's door, read-only, is the one mount.
    assert host["Binds"] == [f"{ts.aio.settings.door.resolve()}:/run/door:ro"]
    assert [(m["Destination"], m["RW"]) for m in container["Mounts"]] == [("/run/door", False)]
    assert host["AutoRemove"] is True and host["NetworkMode"] == "none"
    assert host["Memory"] == 512 * 1024 * 1024 == host["MemorySwap"], "default, no swap"
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 256

    ts.cancel(job.id)
    ended = ts.wait(job.id, timeout=120)
    assert ended.state is JobState.CANCELLED, ended
    wait_for(lambda: not containers(job.id), timeout=60, what="the container to be gone")


def test_job_over_its_memory_limit_fails_saying_out_of_memory(ts: TaskScheduler) -> None:
    name = unique("dock")
    code = "def main():\n    hog = b'x' * (1024 ** 3)\n    return len(hog)\n"
    ts.create({"name": name, "code": code, "pool": "docker", "memory": "256m"})
    job = ts.wait(ts.run(name).id, timeout=180)
    assert job.state is JobState.FAILED, job
    # The kernel kills the job's process inside the container; Prefect's runner reports why.
    assert job.error is not None and "SIGKILL" in job.error, job
    assert "exceeding memory limits" in job.error, job


def test_limits_outside_the_pool_bounds_are_refused(ts: TaskScheduler) -> None:
    with pytest.raises(errors.InvalidTask) as raised:
        ts.create({"name": unique("dock"), "code": PROBE, "pool": "docker", "memory": "64g"})
    assert "memory" in str(raised.value)
    with pytest.raises(errors.InvalidTask):
        ts.create({"name": unique("dock"), "code": PROBE, "pool": "process", "cpus": 1})


def docker_worker_pid(platform: LocalPlatform) -> int:
    """The docker worker's own process (the pid file names its respawn wrapper)."""
    wrapper = platform._live_pid(DOCKER_WORKER)
    assert wrapper is not None, "the docker worker is not running"
    workers = [pid for pid in _descendants(wrapper) if _is_docker_worker(pid)]
    assert len(workers) == 1, f"expected one docker worker below {wrapper}, found {workers}"
    return workers[0]


def _is_docker_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"docker" in command and b"--pool" in command


def test_docker_worker_killed_mid_job_leaves_the_job_to_finish_once(
    ts: TaskScheduler, docker_platform: LocalPlatform
) -> None:
    """kill -9 of the docker worker while its job runs: the container carries on and reports
    the job's end itself, the worker comes back (its respawn wrapper) and starts new jobs,
    and nothing runs twice."""
    name = unique("dock")
    ts.create({"name": name, "code": STEPS, "pool": "docker"})
    job = ts.run(name)
    wait_for(lambda: ts.job(job.id).state is JobState.RUNNING, timeout=180, what="Running")
    victim = docker_worker_pid(docker_platform)
    os.kill(victim, signal.SIGKILL)

    ended = ts.wait(job.id, timeout=180)
    steps = [m for line in ts.logs(job.id) if (m := line.message).startswith("STEP ")]
    assert ended.state is JobState.COMPLETED, (ended, steps)
    assert steps == [f"STEP start {job.id}", f"STEP end {job.id}"], steps
    assert ended.attempts == 1, ended

    # The wrapper started a new worker, which takes the next job.
    assert wait_for(
        lambda: docker_worker_pid(docker_platform) != victim, timeout=60, what="a new worker"
    )
    after = ts.wait(ts.run(name, parameters={"seconds": 0}).id, timeout=180)
    assert after.state is JobState.COMPLETED, after
    assert ts.job(job.id).attempts == 1, "the killed worker's job did not run again"
    wait_for(lambda: not containers(job.id), timeout=60, what="the first container gone")
