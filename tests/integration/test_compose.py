"""docker-compose.yml brought up for real, with locally built images put in through the environment.

The stack runs exactly as the file describes it (networks, volumes, healthchecks, the proxy as
the only published port); only the images differ: the job/services image and Debian-package
stand-ins for postgres, redis and nginx, built by ``docker/ensure.sh`` because no registry is
reachable here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskscheduler.platform import free_port
from tests.integration.helpers import unique, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "docker" / "ensure.sh"
UP_TIMEOUT = 600.0

# Runs in the job's container: where it ran and as whom.
FINAL = {"completed", "failed", "cancelled"}

WHOAMI = """
import os, socket

def main():
    print(f"WHOAMI host={socket.gethostname()} uid={os.getuid()}")
    return "ran"
"""


def compose_tool() -> list[str]:
    """``docker compose`` (v2) where the plugin exists, else Debian's ``docker-compose``."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    probe = subprocess.run(["docker-compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` works; run `make test-images`")


def ensure(what: str) -> str:
    """``docker/ensure.sh what``'s output (builds what is missing; fails the test with why)."""
    done = subprocess.run(
        [str(ENSURE), what], capture_output=True, text=True, cwd=ROOT, timeout=1200, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"docker/ensure.sh {what} failed: {done.stderr[-2000:]}", pytrace=False)
    return done.stdout


def public_listeners() -> set[int]:
    """TCP ports listening on a non-loopback address of the host (IPv4 and IPv6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.split(":")
                if state != "0A":  # LISTEN
                    continue
                loopback = address in ("0100007F", "00000000000000000000000001000000") or (
                    len(address) == 8 and address.endswith("7F")
                )
                if not loopback:
                    ports.add(int(port, 16))
    return ports


@dataclass
class Stack:
    """One compose project of docker-compose.yml on this host."""

    command: list[str]
    project: str
    env: dict[str, str]
    port: int
    listeners_before: set[int]

    def compose(self, *args: str, timeout: float = UP_TIMEOUT) -> str:
        done = subprocess.run(
            [*self.command, "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} failed:\n{done.stderr[-3000:]}\n{self.logs()}"
            )
        return done.stdout

    def logs(self) -> str:
        done = subprocess.run(
            [*self.command, "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), "logs"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=self.env,
            timeout=120,
            check=False,
        )
        return done.stdout[-6000:]

    def containers(self) -> list[dict[str, Any]]:
        """``docker inspect`` of the project's running containers."""
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
        return list(json.loads(out.stdout))

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")
        wait_for(self.ready, timeout=UP_TIMEOUT, interval=3, what="the stack behind the proxy")

    def ready(self) -> bool:
        """Every service with a health check healthy (the docker worker's comes after it has
        created its pool), and both APIs answering through the proxy."""
        health = [c["State"].get("Health", {}).get("Status") for c in self.containers()]
        if not health or any(status not in (None, "healthy") for status in health):
            return False
        try:
            with self.client() as client:
                return (
                    client.get("/api/health").status_code == 200
                    and client.get("/healthz").status_code == 200
                )
        except (httpx.HTTPError, OSError, AssertionError):
            return False

    def certificate(self) -> Path:
        """The proxy's certificate (self-signed on first start), copied out of its volume once."""
        path = Path(self.env["TASKS_STATE"]) / "tls.crt"
        if not path.exists():
            pem = self.compose("exec", "-T", "proxy", "cat", "/certs/tls.crt", timeout=60)
            assert "BEGIN CERTIFICATE" in pem, pem
            path.write_text(pem)
        return path

    def client(self, **kwargs: Any) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.certificate()))
        return httpx.Client(
            base_url=f"https://localhost:{self.port}", verify=context, timeout=60, **kwargs
        )

    def admin(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {self.env['TASKS_ADMIN_TOKEN']}"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack, up; torn down with its volumes afterwards."""
    job_image = ensure("image").strip().splitlines()[-1]
    images = dict(line.split("=", 1) for line in ensure("local").split())
    command = compose_tool()
    state = tmp_path_factory.mktemp("compose")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TASKS_"))},
        **images,
        "TASKS_IMAGE": job_image,
        "TASKS_JOB_IMAGE_PULL": "Never",
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "PREFECT_AUTH_STRING": f"admin:{secrets.token_hex(16)}",
        "TASKS_ADMIN_TOKEN": secrets.token_hex(32),
        "TASKS_PREFECT_DB_PASSWORD": secrets.token_hex(16),
        "TASKS_API_DB_PASSWORD": secrets.token_hex(16),
        "TASKS_GATE_KEY": secrets.token_hex(32),
        "HTTPS_PORT": str(free_port()),
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "TASKS_STATE": str(state),
    }
    project = f"tscompose{secrets.token_hex(3)}"
    env["TASKS_DOOR_VOLUME"] = f"{project}-door"
    started = Stack(
        command=command,
        project=project,
        env=env,
        port=int(env["HTTPS_PORT"]),
        listeners_before=public_listeners(),
    )
    try:
        started.up()
        yield started
    finally:
        with contextlib.suppress(Exception):
            started.compose("down", "--volumes", "--remove-orphans", timeout=300)


def test_proxy_serves_https_with_a_self_signed_certificate(stack: Stack) -> None:
    """One TLS door: the Prefect API (behind basic auth) and the task API, HSTS on."""
    with stack.client() as client:
        health = client.get("/api/health")
        assert health.status_code == 200, health.text
        assert health.headers["strict-transport-security"].startswith("max-age=")
        assert client.post("/api/flows/filter", json={}).status_code == 401
        user, password = stack.env["PREFECT_AUTH_STRING"].split(":", 1)
        assert client.post("/api/flows/filter", json={}, auth=(user, password)).status_code == 200
        assert client.get("/v1/tasks").status_code == 401
    with stack.admin() as admin:
        assert admin.get("/v1/tasks").status_code == 200
    # Plain HTTP on the same port reaches nothing behind the proxy.
    plain = httpx.get(f"http://127.0.0.1:{stack.port}/v1/tasks", timeout=10)
    assert plain.status_code == 400 and "HTTPS port" in plain.text, plain.text


def test_only_the_proxy_is_published_and_only_the_docker_worker_has_the_socket(
    stack: Stack,
) -> None:
    """No database, Redis, API or worker port on the host; the Docker socket in one service."""
    published: dict[str, list[str]] = {}
    socket_holders = []
    for container in stack.containers():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        bindings = container["HostConfig"].get("PortBindings") or {}
        published[service] = [
            f"{b['HostIp']}:{b['HostPort']}" for ports in bindings.values() for b in ports
        ]
        if any(m.get("Destination") == "/var/run/docker.sock" for m in container["Mounts"]):
            socket_holders.append(service)
    assert {"postgres", "redis", "prefect-api", "task-api", "docker-worker"} <= set(published)
    assert {s: p for s, p in published.items() if p} == {"proxy": [f"0.0.0.0:{stack.port}"]}
    assert socket_holders == ["docker-worker"]
    # What the host itself listens on: the stack added the HTTPS port and nothing else.
    added = public_listeners() - stack.listeners_before
    assert added == {stack.port}, f"new public listeners: {sorted(added)}"


def test_task_runs_in_a_container_of_the_compose_worker_and_survives_down_and_up(
    stack: Stack,
) -> None:
    """Created through the proxy, run in a job container; ``down`` + ``up`` keeps everything."""
    name = unique("compose")
    with stack.admin() as admin:
        created = admin.post(
            "/v1/tasks", json={"name": name, "code": WHOAMI, "pool": "docker", "retries": 0}
        )
        assert created.status_code == 201, created.text
        job_id = admin.post(f"/v1/tasks/{name}/run").json()["job_id"]
        job = wait_for(
            lambda: (j := admin.get(f"/v1/jobs/{job_id}").json())["state"] in FINAL and j,
            timeout=420,
            interval=2,
            what="the job to end",
        )
        assert job["state"] == "completed", (job, stack.logs())
        lines = admin.get(f"/v1/jobs/{job_id}/logs").json()["items"]
        logs = "\n".join(line["message"] for line in lines)
    # The job ran in a container of its own, started by the compose stack's docker worker.
    auth = tuple(stack.env["PREFECT_AUTH_STRING"].split(":", 1))
    with stack.client(auth=auth) as prefect:
        run = prefect.get(f"/api/flow_runs/{job_id}").json()
        workers = prefect.post("/api/work_pools/docker/workers/filter", json={}).json()
    container_id = run["infrastructure_pid"].rsplit(":", 1)[-1]
    assert f"WHOAMI host={container_id[:12]} uid=10001" in logs, logs
    worker_container = stack.compose("ps", "-q", "docker-worker", timeout=60).strip()
    assert f"docker-{worker_container[:12]}" in {w["name"] for w in workers}

    stack.compose("down", timeout=300)
    assert not stack.containers()
    stack.up()
    with stack.admin() as admin:
        assert admin.get(f"/v1/tasks/{name}").json()["pool"] == "docker"
        again = admin.get(f"/v1/jobs/{job_id}").json()
        assert again["state"] == "completed"
        assert again["task"] == name


def test_compose_refuses_to_start_without_its_secrets(stack: Stack) -> None:
    """Secrets come from the environment: without them ``config`` stops, naming the variable."""
    env = {k: v for k, v in stack.env.items() if k != "POSTGRES_PASSWORD"}
    done = subprocess.run(
        [*stack.command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stderr
    stack.compose("config", "-q", timeout=60)  # and with them, the file is valid
