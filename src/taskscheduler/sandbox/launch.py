"""``python -m taskscheduler.sandbox.launch [-- ARGV]``: start one job in a sandbox.

A process-lane worker starts this instead of Prefect's engine. It runs with the worker's whole
environment (Prefect's process worker hands every job its own settings, the platform's auth
string among them), keeps only what a job may hold (``gate.environment.for_job``), adds the
job's credential and the door, and replaces itself with ``bwrap`` around the job's runtime
(``taskscheduler.runtime.door``, unless ``ARGV`` names another command). Nothing secret is put
on a command line, where every process of the host could read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from taskscheduler.gate import environment
from taskscheduler.sandbox.command import Sandbox, SandboxUnavailable

RUNTIME = ("-m", "taskscheduler.runtime.door")
JOB_HOME = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs
# Names whose values are secrets of the platform: no job variable may contain such a value.
_SECRET_NAME = re.compile(
    r"AUTH_STRING|API_KEY|TOKEN|PASSWORD|SECRET|_KEY$|DATABASE|CONNECTION_URL"
)


def platform_secrets(env: Mapping[str, str]) -> list[str]:
    """The values of the environment that are the platform's secrets, and the password parts
    of those that hold one (``user:password``, a URL's password), which could be copied alone."""
    found: list[str] = []
    for name, value in env.items():
        if not _SECRET_NAME.search(name) or name == environment.CREDENTIAL_VARIABLE:
            continue
        found.append(value)
        if "://" in value:
            with contextlib.suppress(ValueError):
                found.append(urllib.parse.urlsplit(value).password or "")
        elif ":" in value:
            found.append(value.partition(":")[2])
    return [secret for secret in found if secret]


def job_environment(env: Mapping[str, str], *, door: bool) -> dict[str, str]:
    """The environment a sandboxed job gets from its worker's ``env``."""
    job = environment.for_job(
        env,
        secrets=platform_secrets(env),
        job_credential=env.get(environment.CREDENTIAL_VARIABLE),
        door=f"{environment.DOOR_MOUNT}/{environment.DOOR_SOCKET}" if door else None,
    )
    job.update(
        PATH="/usr/bin:/bin",
        HOME=JOB_HOME,
        PREFECT_HOME=f"{JOB_HOME}/.prefect",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return job


def sandbox_of(env: Mapping[str, str], *, door: bool) -> Sandbox:
    """The sandbox of a job started from a worker with ``env``: the interpreter's environment
    and the project readable, the platform's state directory masked, the door if wanted."""
    project = Path(env.get("TASKS_PROJECT_DIR") or os.getcwd())
    state = Path(env.get("TASKS_STATE_DIR") or ".run")
    state = state if state.is_absolute() else project / state
    door_dir = env.get("TASKS_DOOR_DIR")
    if door and not door_dir:
        raise SandboxUnavailable("TASKS_DOOR_DIR names no door: the worker was started wrongly")
    writable = [Path(p) for p in json.loads(env.get("TASKS_SANDBOX_WRITABLE") or "[]")]
    return Sandbox(
        readable=[Path(sys.prefix), project],
        masked=[state],
        writable=writable,
        door=Path(door_dir) if door and door_dir else None,
        workdir=project,
    )


def main(argv: list[str] | None = None) -> None:
    """Replace this process with the sandboxed job."""
    args = sys.argv[1:] if argv is None else argv
    inner = args[1:] if args[:1] == ["--"] else [sys.executable, *RUNTIME]
    env = dict(os.environ)
    command = sandbox_of(env, door=True).command(inner)
    os.execve(command[0], command, job_environment(env, door=True))  # noqa: S606


if __name__ == "__main__":
    main()
