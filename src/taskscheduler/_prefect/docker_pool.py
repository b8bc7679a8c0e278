"""The Docker work pool: its hardened job template, and the engine and image it needs.

Every job of the ``docker`` pool runs in a container of its own that the job cannot
reconfigure: what isolates it is written as a constant into the template's job
configuration, and only the resource limits are job variables, each with bounds that the
Prefect server enforces when a deployment or flow run sets it. This pool is the one for
untrusted code.

The engine and the image come from ``docker/ensure.sh``, which starts the daemon when none
answers and builds the image only when no image of the current inputs exists.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskscheduler import errors
from taskscheduler.sandbox import limits

__all__ = [
    "JOB_UID",
    "POOL",
    "POOL_TYPE",
    "base_job_template",
    "ensure",
    "ensure_pool",
    "job_variables",
    "set_image",
]

POOL = "docker"
POOL_TYPE = "docker"
# The image's unprivileged user (docker/Dockerfile); set again here so that an image whose
# USER is root still runs jobs as nobody in particular.
JOB_UID = "10001:10001"
ENSURE_SCRIPT = Path("docker") / "ensure.sh"
# A first run on a fresh machine installs the engine, bootstraps Debian and builds the image.
ENSURE_TIMEOUT = 1800.0

# Defaults and bounds of the limits a task may set (MiB, billionths of a CPU, processes).
# The same bounds as the sandbox lane's (taskscheduler.sandbox.limits).
MEMORY_MB = {k: int(v) for k, v in dataclasses.asdict(limits.MEMORY_MB).items()}
NANO_CPUS = {k: round(v * 1_000_000_000) for k, v in dataclasses.asdict(limits.CPUS).items()}
PIDS = {k: int(v) for k, v in dataclasses.asdict(limits.PIDS).items()}
TMP_SIZE = "128m"  # the writable /tmp, on tmpfs: it counts against the memory limit


def ensure(project_dir: Path, env: Mapping[str, str], what: str = "all") -> str:
    """Run ``docker/ensure.sh what``: start Docker if needed (and build the image if missing).

    Returns the job image's tag for ``all``. Raises ``PlatformUnavailable`` with the script's
    last lines when it cannot be done.
    """
    script = project_dir / ENSURE_SCRIPT
    try:
        result = subprocess.run(
            [str(script), what],
            cwd=project_dir,
            env=dict(env),
            capture_output=True,
            text=True,
            check=False,
            timeout=ENSURE_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.PlatformUnavailable(f"{script} {what} failed: {exc}") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or (what == "all" and not lines):
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise errors.PlatformUnavailable(
            f"Docker is not usable ({script} {what} exited with {result.returncode}):\n{tail}"
        )
    return lines[-1] if lines else ""


def base_job_template(default: Mapping[str, Any], image: str, *, pull: str) -> dict[str, Any]:
    """The hardened template, from prefect-docker's default one (``default``).

    ``pull`` is the image pull policy: ``Never`` for an image built on this machine (a pull
    would fail without a registry), ``IfNotPresent`` for one from a registry.
    """
    template = copy.deepcopy(dict(default))
    variables: dict[str, Any] = template["variables"]
    properties: dict[str, Any] = variables["properties"]
    # What a job could use to escape or reach the host is not a variable at all.
    for name in (
        "networks",
        "network_mode",
        "volumes",
        "privileged",
        "auto_remove",
        "container_create_kwargs",
        "mem_limit",
        "memswap_limit",
    ):
        properties.pop(name, None)
    properties["memory_mb"] = {
        "title": "Memory limit (MiB)",
        "description": "The job is killed (out of memory) when it uses more; swap is off.",
        "type": "integer",
        **MEMORY_MB,
    }
    properties["nano_cpus"] = {
        "title": "CPU limit (billionths of a CPU)",
        "description": "1000000000 is one CPU.",
        "type": "integer",
        **NANO_CPUS,
    }
    properties["pids_limit"] = {
        "title": "Process limit",
        "description": "Most processes and threads the job may have at once.",
        "type": "integer",
        **PIDS,
    }
    set_image(template, image, pull=pull)
    configuration: dict[str, Any] = template["job_configuration"]
    configuration.update(
        # No network at all: a job reaches the platform only through the job gateway's socket,
        # which the worker mounts (taskscheduler._prefect.workers enforces both whatever this
        # template says). PostgreSQL on the host trusts loopback; a job never sees it.
        network_mode="none",
        networks=[],
        volumes=[],  # no host mounts
        privileged=False,
        auto_remove=True,
        mem_limit="{{ memory_mb }}m",
        memswap_limit="{{ memory_mb }}m",  # equal to the memory limit: no swap
        container_create_kwargs={
            "user": JOB_UID,
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={TMP_SIZE},mode=1777"},  # noqa: S108
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "nano_cpus": "{{ nano_cpus }}",
            "pids_limit": "{{ pids_limit }}",
            # Docker's tiny init as PID 1: forwards the stop signal and reaps zombies.
            "init": True,
        },
    )
    return template


def set_image(template: dict[str, Any], image: str, *, pull: str) -> None:
    """Make ``image`` (with its pull policy) the default of the template's jobs."""
    properties: dict[str, Any] = template["variables"]["properties"]
    properties["image"] = {**properties.get("image", {}), "default": image}
    properties["image_pull_policy"] = {
        **properties.get("image_pull_policy", {}),
        "default": pull,
    }


def job_variables(task: str, memory_mb: int | None, cpus: float | None) -> dict[str, Any]:
    """A task's job variables on the Docker pool: its limits and the label naming it.

    Prefect itself labels each container with the flow run (``io.prefect.flow-run-id``, the
    job id) and deployment (``io.prefect.deployment-name``, the task).
    """
    variables: dict[str, Any] = {"labels": {"io.taskscheduler.task": task}}
    if memory_mb is not None:
        variables["memory_mb"] = memory_mb
    if cpus is not None:
        variables["nano_cpus"] = round(cpus * 1_000_000_000)
    return variables


def ensure_pool(client: Any, image: str, *, pull: str) -> None:
    """Create the docker pool with the hardened template, or point it at ``image``.

    ``client`` is a ``SyncPrefectClient``. An existing pool keeps its template (an operator
    may have tightened its bounds); only the default image and pull policy follow ``image``.
    """
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect_docker.worker import DockerWorker  # type: ignore[import-untyped]

    try:
        pool = client.read_work_pool(POOL)
    except ObjectNotFound:
        default = DockerWorker.get_default_base_job_template()
        create = WorkPoolCreate(
            name=POOL,
            type=POOL_TYPE,
            base_job_template=base_job_template(default, image, pull=pull),
            description="One hardened container per job: the pool for untrusted code.",
        )
        with contextlib.suppress(ObjectAlreadyExists):  # a concurrent create is as good
            client.create_work_pool(create)
        return
    template = copy.deepcopy(pool.base_job_template)
    set_image(template, image, pull=pull)
    # A pool from before jobs lost the network (host networking) gets none, like new ones.
    template["job_configuration"].update(network_mode="none", networks=[])
    if template != pool.base_job_template:
        client.update_work_pool(POOL, WorkPoolUpdate(base_job_template=template))


def main(argv: list[str] | None = None) -> int:
    """``python -m taskscheduler._prefect.docker_pool create-pool --image I [--pull P]``.

    What the compose stack's docker worker runs before it starts: the pool, on the Prefect
    API of ``PREFECT_API_URL``.
    """
    import argparse

    from prefect.client.orchestration import get_client

    parser = argparse.ArgumentParser(prog="python -m taskscheduler._prefect.docker_pool")
    parser.add_argument("command", choices=["create-pool"])
    parser.add_argument("--image", required=True)
    parser.add_argument("--pull", default="IfNotPresent")
    args = parser.parse_args(argv)
    with get_client(sync_client=True) as client:
        ensure_pool(client, args.image, pull=args.pull)
    print(f"work pool {POOL!r} uses {args.image} ({args.pull})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
