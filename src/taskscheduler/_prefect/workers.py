"""Prefect's process and Docker workers, made to start every job with only its own credential.

Stock workers hand each job their own settings — the Prefect auth string included — and the
Docker worker puts jobs on the host's network, where PostgreSQL trusts every local connection.
These subclasses keep Prefect's machinery (polling, claiming, cancellation, crash reports,
the pools' types and templates) and change what a job gets:

- **process**: the job runs in a bubblewrap sandbox (``taskscheduler.sandbox``): no network,
  no view of the host's processes or the platform's state directory; its environment is
  rebuilt by ``taskscheduler.sandbox.launch`` from what the worker would have given it.
- **docker**: the container has no network at all (``network_mode: none``) and holds a
  scrubbed environment; the job gateway's socket directory is its only mount.

Both give the job a credential for its own run (``gate.credential``) and run
``taskscheduler.runtime.door``, which relays the job's Prefect client to the gateway.

``python -m taskscheduler._prefect.workers process|docker --pool P --name N [--limit L]
[--with-healthcheck]`` starts one, as ``prefect worker start`` would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from prefect.utilities.processutils import command_to_string, setup_signal_handlers_worker
from prefect.workers.process import (
    ProcessJobConfiguration,
    ProcessWorker,
    ProcessWorkerResult,
)
from prefect_docker.worker import (  # type: ignore[import-untyped]
    DockerWorker,
    DockerWorkerJobConfiguration,
)

from taskscheduler.gate import credential, environment
from taskscheduler.sandbox import launch
from taskscheduler.settings import get_settings

if TYPE_CHECKING:
    from uuid import UUID

    import anyio.abc
    from prefect.client.schemas.objects import Flow, FlowRun, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse

    from docker import DockerClient  # type: ignore[attr-defined]

LAUNCHER = ("-m", "taskscheduler.sandbox.launch")
# In a container, Prefect's runner (as a stock Docker job runs) behind the door: it stops the
# engine when the run is cancelled and says why a killed engine died (out of memory).
DOOR_RUNNER = "python -m taskscheduler.runtime.door prefect flow-run execute"


def _job_credential(flow_run: FlowRun) -> str:
    """A credential for this run only, signed with the gate key the worker was given."""
    key = get_settings().gate_key
    if key is None:
        raise RuntimeError("TASKS_GATE_KEY is not set: the worker cannot give jobs a credential")
    return credential.mint(key.get_secret_value().encode(), flow_run.id)


class SandboxedProcessJobConfiguration(ProcessJobConfiguration):
    """A process job started through the sandbox launcher, with its own run's credential."""

    def prepare_for_flow_run(
        self,
        flow_run: FlowRun,
        deployment: DeploymentResponse | None = None,
        flow: Flow | None = None,
        work_pool: WorkPool | None = None,
        worker_name: str | None = None,
        worker_id: UUID | None = None,
    ) -> None:
        super().prepare_for_flow_run(
            flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id
        )
        # The launcher reads it from its environment; it never reaches a command line.
        self.env[environment.CREDENTIAL_VARIABLE] = _job_credential(flow_run)
        self.command = command_to_string([sys.executable, *LAUNCHER])
        self._command_configured = True


class SandboxedProcessWorker(ProcessWorker):
    """Prefect's process worker; each job in a sandbox of its own."""

    type = "process"
    job_configuration = SandboxedProcessJobConfiguration

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        """Say in the job's logs which worker started it. Prefect's own "submitting" line is
        written before the claim, so with two workers on a pool both may write it for one run;
        this one is written only by the worker that won the claim."""
        self.get_flow_run_logger(flow_run).info(f"Started by worker '{self.name}'")
        return await super().run(flow_run, configuration, task_status)


class IsolatedDockerJobConfiguration(DockerWorkerJobConfiguration):  # type: ignore[misc]
    """A container with no network, a scrubbed environment and the door as its only mount."""

    def prepare_for_flow_run(
        self,
        flow_run: FlowRun,
        deployment: DeploymentResponse | None = None,
        flow: Flow | None = None,
        work_pool: WorkPool | None = None,
        worker_name: str | None = None,
        worker_id: UUID | None = None,
    ) -> None:
        super().prepare_for_flow_run(
            flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id
        )
        inherited: dict[str, Any] = dict(self.env)
        inherited.pop("TASKS_PROJECT_DIR", None)  # the image says where the project is
        self.env: dict[str, str | None] = {
            **environment.for_job(
                inherited,
                secrets=launch.platform_secrets({**os.environ, **_strings(inherited)}),
                job_credential=_job_credential(flow_run),
                door=f"{environment.DOOR_MOUNT}/{environment.DOOR_SOCKET}",
            ),
            "PREFECT__FLOW_RUN_ID": str(flow_run.id),
        }
        # Whatever the pool's template says: no network, and the door is the only mount.
        self.network_mode = "none"
        self.networks: list[str] = []
        self.volumes = [f"{door_source()}:{environment.DOOR_MOUNT}:ro"]
        self.command = DOOR_RUNNER

    def get_extra_hosts(self, docker_client: DockerClient) -> dict[str, str] | None:
        """No host names to add: the container has no network to reach them on."""
        return None


class IsolatedDockerWorker(DockerWorker):  # type: ignore[misc]
    """prefect-docker's worker; each job in a container with no network."""

    type = "docker"
    job_configuration = IsolatedDockerJobConfiguration


def door_source() -> str:
    """What Docker mounts as the door: ``TASKS_DOOR_SOURCE`` (a volume name in compose), else
    the gateway's socket directory on this host."""
    return os.environ.get("TASKS_DOOR_SOURCE") or str(get_settings().door.resolve())


def _strings(values: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in values.items() if isinstance(v, str)}


WORKERS: dict[str, type[ProcessWorker] | type[Any]] = {
    "process": SandboxedProcessWorker,
    "docker": IsolatedDockerWorker,
}


def main(argv: list[str] | None = None) -> int:
    """Start one worker of the given kind and serve its pool until stopped."""
    parser = argparse.ArgumentParser(prog="python -m taskscheduler._prefect.workers")
    parser.add_argument("kind", choices=sorted(WORKERS))
    parser.add_argument("--pool", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--with-healthcheck", action="store_true", help="serve /health on port 8080"
    )
    args = parser.parse_args(argv)
    setup_signal_handlers_worker(os.getpid(), f"the {args.kind} worker", print)

    async def serve() -> None:
        from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS

        worker = WORKERS[args.kind](
            work_pool_name=args.pool,
            name=args.name,
            limit=args.limit or None,
            heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
            create_pool_if_not_found=False,
        )
        try:
            await worker.start(with_healthcheck=args.with_healthcheck, printer=print)
        except asyncio.CancelledError:
            print(f"Worker {worker.name!r} stopped!")

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
