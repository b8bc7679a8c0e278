"""The Python REST client against the real platform: a token of each scope, the same errors as
the SDK, and a read token that cannot change anything."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskscheduler import errors, models
from taskscheduler.client import Client
from taskscheduler.platform import LocalPlatform
from tests.integration.helpers import unique

HELLO = 'def main(who="world"):\n    print(f"hello {who}")\n    return 42\n'
NO_FILE = Path("/nonexistent/client.json")


def client(platform: LocalPlatform, token: str | None) -> Client:
    return Client(platform.service_api_url, token, timeout=60, config_path=NO_FILE)


@pytest.fixture(scope="module")
def api_admin(platform: LocalPlatform, admin: httpx.Client) -> Iterator[Client]:
    with client(platform, platform.credentials.admin_token.get_secret_value()) as api:
        yield api


@pytest.fixture(scope="module")
def writer(platform: LocalPlatform, api_admin: Client) -> Iterator[Client]:
    made = api_admin.create_token(unique("client-write"), "write", pools=["process"])
    with client(platform, made.token) as api:
        yield api


@pytest.fixture(scope="module")
def reader(platform: LocalPlatform, api_admin: Client) -> Iterator[Client]:
    made = api_admin.create_token(unique("client-read"), "read")
    with client(platform, made.token) as api:
        yield api


def test_a_write_token_drives_a_task_and_its_jobs(writer: Client) -> None:
    name = unique("client")
    task = writer.create({"name": name, "code": HELLO, "every": "1h", "pool": "process"})
    assert (task.name, task.state, task.pool) == (name, "active", "process")
    assert writer.get(name).spec is not None
    assert name in [t.name for t in writer.list(search=name)]
    with pytest.raises(errors.TaskAlreadyExists):
        writer.create({"name": name, "code": HELLO, "pool": "process"})

    job = writer.run(name, {"who": "client"})
    done = writer.wait(job.id, timeout=120)
    assert done.state is models.JobState.COMPLETED, done
    assert any("hello client" in line.message for line in writer.logs(job.id))
    assert job.id in [j.id for j in writer.jobs(task=name, limit=None)]
    with pytest.raises(errors.JobAlreadyFinished):
        writer.cancel(job.id)

    later = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
    scheduled = writer.schedule(name, later)
    moved = writer.reschedule(scheduled.id, later + dt.timedelta(hours=1))
    assert moved.scheduled_time == later + dt.timedelta(hours=1)
    assert writer.cancel(moved.id).state is models.JobState.CANCELLED

    updated = writer.update(name, {"description": "from the client"})
    assert updated.spec is not None and updated.spec.description == "from the client"
    assert writer.pause(name).paused and not writer.resume(name).paused
    assert len(writer.preview(every="1h", count=3).next) == 3
    writer.delete(name)
    with pytest.raises(errors.TaskNotFound) as caught:
        writer.get(name)
    assert caught.value.name == name
    with pytest.raises(errors.JobNotFound):
        writer.job("00000000-0000-0000-0000-000000000000")
    with pytest.raises(errors.InvalidTask) as invalid:
        writer.create({"name": unique("client"), "code": HELLO, "retries": -1})
    assert invalid.value.field == "retries"


def test_a_read_token_reads_but_cannot_change_anything(
    writer: Client, reader: Client, api_admin: Client
) -> None:
    name = unique("client-ro")
    writer.create({"name": name, "code": HELLO, "pool": "process"})
    assert reader.get(name).name == name
    assert reader.audit(task=name, limit=5)
    attempts = [
        lambda: reader.create({"name": unique("ro"), "code": HELLO}),
        lambda: reader.update(name, {"description": "no"}),
        lambda: reader.pause(name),
        lambda: reader.run(name),
        lambda: reader.schedule(name, dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
        lambda: reader.delete(name),
        lambda: reader.tokens(),
        lambda: reader.create_token("nope", "admin"),
    ]
    for attempt in attempts:
        with pytest.raises(errors.PermissionDenied, match="needs scope"):
            attempt()
    task = reader.get(name)
    assert not task.paused
    assert task.spec is not None and task.spec.description != "no"
    assert reader.jobs(task=name) == []
    writer.delete(name)


def test_a_write_token_cannot_manage_tokens_and_a_revoked_one_is_refused(
    platform: LocalPlatform, writer: Client, api_admin: Client
) -> None:
    with pytest.raises(errors.PermissionDenied):
        writer.tokens()
    made = api_admin.create_token(unique("client-gone"), "read")
    granted = api_admin.grant_token(made.id, pools=["docker", "process"])
    assert granted.pools == ["docker", "process"]
    api_admin.revoke_token(made.id)
    assert not {t.id: t for t in api_admin.tokens()}[made.id].active
    with client(platform, made.token) as gone, pytest.raises(errors.NotAuthenticated):
        gone.list()
    with pytest.raises(errors.TokenNotFound):
        api_admin.revoke_token("no-such-token")
    assert api_admin.health().status == "ok"


def test_an_unreachable_api_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with Client(url, "tsk_x", config_path=NO_FILE) as api, pytest.raises(errors.ApiUnreachable):
        api.health()


@pytest.mark.slow
def test_a_client_only_install_runs_the_cli_against_the_platform(
    platform: LocalPlatform, api_admin: Client, tmp_path: Path
) -> None:
    """`pip install taskscheduler` without the `server` extra: the CLI and the client, with
    neither Prefect nor the server's libraries, speak to the running platform.

    A fresh virtualenv gets the client's locked dependencies (``uv export`` without the extra)
    and the project itself without dependencies, from the lock's versions (uv's cache serves
    them; the package registry only if it lacks one).
    """
    uv = shutil.which("uv")
    assert uv, "uv is what `make install` installs with"
    project = Path(__file__).resolve().parents[2]
    venv = tmp_path / "client-venv"
    python = venv / "bin" / "python"
    steps = [
        [uv, "venv", "--python", sys.executable, str(venv)],
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--project", str(project), "-o", str(tmp_path / "client.txt")],
        [uv, "pip", "install", "--python", str(python), "-r", str(tmp_path / "client.txt")],
        [uv, "pip", "install", "--python", str(python), "--no-deps", str(project)],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, (step, done.stderr[-2000:])
    requirements = (tmp_path / "client.txt").read_text()
    for server_only in ("prefect", "fastapi", "sqlalchemy", "asyncpg", "uvicorn"):
        assert f"\n{server_only}==" not in requirements, server_only
    missing = subprocess.run(
        [str(python), "-c", "import prefect"], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode != 0 and "No module named 'prefect'" in missing.stderr

    name = unique("client-only")
    api_admin.create({"name": name, "code": HELLO})
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TASKS_URL": platform.service_api_url,
        "TASKS_TOKEN": platform.credentials.admin_token.get_secret_value(),
    }
    listed = subprocess.run(
        [str(venv / "bin" / "tasks"), "list", "--search", name, "--json"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == [name]
    api_admin.delete(name)
