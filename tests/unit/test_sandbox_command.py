"""The bubblewrap command: what a sandboxed job can see of the host."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taskscheduler.sandbox.command import Sandbox


def pairs(args: list[str], option: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == option]


def test_the_sandbox_shares_nothing_but_what_it_names(tmp_path: Path) -> None:
    project = tmp_path / "project"
    state = project / ".run"
    door = state / "door"
    for path in (project, state, door):
        path.mkdir(parents=True, exist_ok=True)
    args = Sandbox(readable=[project], masked=[state], door=door, workdir=project).command(
        ["python", "-c", "pass"]
    )
    assert "--unshare-all" in args and "--share-net" not in args
    assert "--die-with-parent" in args and "--new-session" in args
    binds = pairs(args, "--ro-bind")
    assert (str(project.resolve()), str(project.resolve())) in binds
    assert (str(door), "/run/door") in binds
    assert all(source not in ("/", "/run", "/var", "/root", "/home") for source, _ in binds)
    assert not pairs(args, "--bind"), "nothing is writable but the sandbox's own /tmp"
    tmpfs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert tmpfs == ["/tmp", str(state.resolve())]
    assert args.index(str(state.resolve())) > args.index(str(project.resolve()))
    assert args[-4:] == ["--", "python", "-c", "pass"]


def test_paths_inside_one_another_are_mounted_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    args = Sandbox(readable=[tmp_path / "a" / "b", tmp_path / "a", Path("/usr/lib")]).command(["x"])
    sources = [s for s, _ in pairs(args, "--ro-bind")]
    assert sources.count(str((tmp_path / "a").resolve())) == 1
    assert str((tmp_path / "a" / "b").resolve()) not in sources
    assert sources.count("/usr") == 1


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (make install)")
def test_a_sandboxed_process_sees_no_network_no_host_processes_and_no_state(
    tmp_path: Path,
) -> None:
    """Run the real thing: loopback refuses, /proc shows only the sandbox, the state is empty."""
    project = tmp_path / "project"
    state = project / ".run"
    state.mkdir(parents=True)
    (state / "credentials.json").write_text("secret")
    probe = (
        "import os, socket\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('127.0.0.1', 5432)); net = 'reached'\n"
        "except OSError as e:\n"
        "    net = 'refused'\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        f"state = os.listdir({str(state)!r})\n"
        "print(net, len(pids), state, os.path.exists('/root'), os.path.exists('/run/postgresql'))\n"
    )
    sandbox = Sandbox(readable=[Path(sys.prefix), project], masked=[state], workdir=project)
    result = subprocess.run(
        sandbox.command([sys.executable, "-c", probe]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    net, pids, rest = result.stdout.split(" ", 2)
    assert net == "refused"
    assert int(pids) <= 3, "only the sandbox's own processes"
    assert rest.strip() == "[] False False"


def test_only_the_directories_the_operator_lists_are_writable(tmp_path: Path) -> None:
    shared = tmp_path / "reports"
    shared.mkdir()
    args = Sandbox(readable=[tmp_path], writable=[shared]).command(["x"])
    assert pairs(args, "--bind") == [(str(shared), str(shared))]
    assert args.index("--bind") > args.index("--ro-bind", args.index(str(tmp_path.resolve())) - 1)
