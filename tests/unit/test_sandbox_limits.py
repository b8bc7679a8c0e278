"""The sandbox lane's limits: bounds, the cgroup files written, the single-use runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskscheduler.platform import catalogue
from taskscheduler.policy import JobParameters
from taskscheduler.sandbox.limits import CONTROLLERS, CPUS, MEMORY_MB, MIB, Cgroups, Limits


def test_a_tasks_limits_are_clamped_to_the_bounds_and_its_timeout_to_the_wall_clock() -> None:
    assert Limits.of(None, None, None, None) == Limits(512, 1.0, 256, None)
    assert Limits.of(8, 64.0, 30.0, 3600.0) == Limits(32, 2.0, 256, 30.0)
    assert Limits.of(100_000, 0.01, None, 3600.0) == Limits(4096, 0.1, 256, 3600.0)
    assert Limits.of(64, 0.5, 7200.0, 3600.0).wall_clock == 3600.0
    assert MEMORY_MB.admits(None) and MEMORY_MB.admits(4096) and not MEMORY_MB.admits(4097)
    assert not CPUS.admits(0.05)
    assert Limits.of(64, None, None, None).rlimits() == {"RLIMIT_AS": 64 * MIB}


def fake_cgroup_root(tmp_path: Path) -> Path:
    for controller in CONTROLLERS:
        (tmp_path / controller).mkdir()
    return tmp_path


def test_a_sandboxs_cgroups_get_its_limits_and_report_an_oom_kill(tmp_path: Path) -> None:
    root = fake_cgroup_root(tmp_path)
    cgroups = Cgroups("platform-1", root)
    for directory in cgroups.dirs.values():
        directory.mkdir()
    assert cgroups.usable()
    cgroup = cgroups.create("sandbox-7")
    swap = root / "memory/platform-1/sandbox-7/memory.memsw.limit_in_bytes"
    swap.write_text("max")  # the kernel's file, where swap is accounted
    cgroup.apply(Limits(64, 0.5, 100, None))
    assert swap.read_text() == str(64 * MIB)
    assert (root / "memory/platform-1/sandbox-7/memory.limit_in_bytes").read_text() == str(64 * MIB)
    assert (root / "pids/platform-1/sandbox-7/pids.max").read_text() == "100"
    assert (root / "cpu/platform-1/sandbox-7/cpu.cfs_quota_us").read_text() == "50000"
    assert (root / "cpu/platform-1/sandbox-7/cpu.cfs_period_us").read_text() == "100000"
    control = root / "memory/platform-1/sandbox-7/memory.oom_control"
    assert not cgroup.out_of_memory()  # no file: nothing known
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not cgroup.out_of_memory()
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cgroup.out_of_memory()


def test_delegation_needs_root_and_a_cgroup_v1_hierarchy(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        assert Cgroups.delegate("x", 1000, 1000, fake_cgroup_root(tmp_path)) is None
    else:
        assert Cgroups.delegate("x", 0, 0, tmp_path) is None  # no controller directories
        delegated = Cgroups.delegate("x", 0, 0, fake_cgroup_root(tmp_path))
        assert delegated is not None and all(d.is_dir() for d in delegated.dirs.values())


def test_limits_travel_in_the_jobs_parameters_only_when_set() -> None:
    plain = JobParameters(task="t")
    assert "memory_mb" not in plain.as_flow_parameters()
    limited = JobParameters(task="t", memory_mb=64, cpus=0.5)
    values = limited.as_flow_parameters()
    assert values["memory_mb"] == 64 and values["cpus"] == 0.5
    assert JobParameters.read(values) == limited


def test_the_fast_and_sandbox_workers_are_told_apart_by_their_command_line() -> None:
    fast = [sys.executable, "-m", catalogue.FAST_MODULE, "--pool", "fast"]
    sandbox = [*fast[:-1], "sandbox", catalogue.SINGLE_USE_FLAG]
    assert catalogue.recognises(catalogue.FAST_WORKER, fast)
    assert not catalogue.recognises(catalogue.SANDBOX_WORKER, fast)
    assert catalogue.recognises(catalogue.SANDBOX_WORKER, sandbox)
    assert not catalogue.recognises(catalogue.FAST_WORKER, sandbox)


def run_single_use(job: dict[str, object]) -> tuple[list[dict[str, object]], int]:
    """The single-use runtime, outside any sandbox: its protocol lines and exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "taskscheduler.runtime.warm", "--single-use"],
        input=json.dumps(job) + "\n" + json.dumps({**job, "id": "second"}) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines()], done.returncode


def test_a_single_use_runtime_runs_one_job_without_prefect_then_exits() -> None:
    code = "import sys\ndef main():\n    print('prefect' in sys.modules)\n    return 7\n"
    messages, code_ = run_single_use(
        {"op": "run", "id": "first", "code": "t-v1", "source": code, "entry": "main"}
    )
    assert code_ == 0
    assert messages[0]["op"] == "ready"
    logs = [m["message"] for m in messages if m["op"] == "log"]
    assert logs == ["False", "Result: 7"]  # Prefect was never imported
    assert [m for m in messages if m["op"] == "done"] == [{"op": "done", "id": "first", "ok": True}]


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics are Linux's")
def test_a_single_use_runtime_lowers_its_address_space_before_the_code_loads() -> None:
    code = "def main():\n    return len(bytearray(300 * 1024 * 1024))\n"
    job = {"op": "run", "id": "j", "code": "t-v1", "source": code, "entry": "main"}
    messages, _ = run_single_use({**job, "rlimits": {"RLIMIT_AS": 200 * MIB}})
    done = next(m for m in messages if m["op"] == "done")
    assert done["ok"] is False and "MemoryError" in str(done["error"])


def test_a_sweep_removes_the_cgroups_of_sandboxes_gone_and_keeps_the_living(
    tmp_path: Path,
) -> None:
    cgroups = Cgroups("platform-1", fake_cgroup_root(tmp_path))
    for directory in cgroups.dirs.values():
        directory.mkdir()
    living, gone = cgroups.create("sandbox-1"), cgroups.create("sandbox-2")
    assert cgroups.sweep({living.name}) == 1
    assert all(d.is_dir() for d in living.dirs.values())
    assert not any(d.exists() for d in gone.dirs.values())
    cgroups.remove()
    assert not any(d.exists() for d in cgroups.dirs.values())
