"""Integration fixtures: a real Prefect server and process worker on a throwaway database.

The session fixture ``platform`` starts one platform for all integration tests; tests that
must stop and start a platform themselves take ``fresh_platform`` so the shared one is never
disturbed.
"""

from __future__ import annotations

import atexit
import contextlib
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from taskscheduler.platform import LocalPlatform, drop_database, free_port
from taskscheduler.settings import Settings, get_settings

# Where jobs of the sandboxed lanes may write (TASKS_SANDBOX_WRITABLE): the tests record what a
# job did (that it ran, how often) in files here. Traversable and writable by the run user, as
# the test's own temporary directories (root's alone) are not.
SHARED = Path(tempfile.mkdtemp(prefix="tasks-jobs-"))
SHARED.chmod(0o1777)
atexit.register(shutil.rmtree, SHARED, ignore_errors=True)


def throwaway_settings(state_dir: Path) -> Settings:
    """Settings naming a new database ``tasks_test_<hex>`` and a free port.

    The PostgreSQL server is the one of ``TASKS_DATABASE_URL`` (or the default); only the
    database name changes, so the developer's own database is never touched.
    """
    base = make_url(Settings().database_url)
    database = base.set(database=f"tasks_test_{secrets.token_hex(4)}")
    return Settings(
        database_url=database.render_as_string(hide_password=False),
        prefect_port=free_port(),
        api_port=free_port(),
        state_dir=state_dir,
        sandbox_writable=[SHARED],
        refusal_window=10.0,  # the refusal summary test waits for a window to close
        # Its own, from its port: never a directory named by the environment, which inside
        # ``pointing_at`` is another platform's (its gateway's door would be replaced, and
        # removed on ``down``, under that platform's jobs).
        runtime_dir=None,
        door_dir=None,
    )


@contextlib.contextmanager
def throwaway_platform(
    state_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[LocalPlatform]:
    """A whole platform on its own database and port, stopped and dropped afterwards."""
    # The docker pool comes up on demand (``docker_platform``), so tests that do not need
    # Docker neither wait for an image build nor run a docker worker.
    platform = LocalPlatform(throwaway_settings(state_dir), extra_env, docker=False)
    try:
        platform.up()
        yield platform
    finally:
        try:
            platform.down()
        finally:
            drop_database(platform.settings.database_url)


@contextlib.contextmanager
def pointing_at(platform: LocalPlatform) -> Iterator[None]:
    """Point this process's SDK, CLI (as the admin token) and Prefect client at the platform,
    then restore.

    ``os.environ`` serves our settings and the subprocesses; Prefect reads its settings once at
    import, so its in-process client needs ``temporary_settings`` as well.
    """
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    # Not the runtime and door directories: they are for the platform's own children, and a
    # platform started in here must choose its own.
    env = {
        k: v
        for k, v in platform.env().items()
        if k.startswith("TASKS_") and k not in ("TASKS_RUNTIME_DIR", "TASKS_DOOR_DIR")
    }
    env["PREFECT_API_URL"] = platform.api_url
    env["PREFECT_API_AUTH_STRING"] = platform.prefect_auth_string
    # The `tasks` CLI speaks the REST API, as the platform's first admin token.
    env["TASKS_URL"] = platform.service_api_url
    env["TASKS_TOKEN"] = platform.credentials.admin_token.get_secret_value()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        try:
            with temporary_settings(
                updates={
                    PREFECT_API_URL: platform.api_url,
                    PREFECT_API_AUTH_STRING: platform.prefect_auth_string,
                }
            ):
                yield
        finally:
            get_settings.cache_clear()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """The session's platform: Prefect server, ``process`` and ``fast`` pools, their workers
    (a process worker and a fast-lane worker) and block types.

    Yields the `LocalPlatform` (``.settings``, ``.api_url``, ``.ui_url``); while it lives,
    ``PREFECT_API_URL`` and the ``TASKS_*`` variables point at it.
    """
    with (
        throwaway_platform(tmp_path_factory.mktemp("platform")) as started,
        pointing_at(started),
    ):
        yield started


@pytest.fixture(scope="session")
def docker_platform(platform: LocalPlatform) -> LocalPlatform:
    """The session's platform plus the ``docker`` pool, its hardened template and its worker.

    Starts the Docker engine and builds the job image when missing (the first run on a fresh
    machine takes minutes). Without a usable engine the tests fail, saying why; never skip.
    """
    from taskscheduler import errors

    try:
        platform.ensure_docker(required=True)
    except errors.PlatformUnavailable as exc:
        pytest.fail(f"the Docker tests need a working Docker engine: {exc}", pytrace=False)
    return platform


@pytest.fixture(scope="session")
def docker_pool(platform: LocalPlatform) -> str:
    """The ``docker`` pool with its hardened job template, without Docker or a worker: tasks
    can be created in it and nothing runs their jobs.

    Made as ``make up`` makes it, with an image that is never pulled, unless it exists; a
    ``docker_platform`` set up later points it at the real image, one set up before keeps it.
    """
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.exceptions import ObjectNotFound

    from taskscheduler._prefect import docker_pool as _docker

    with SyncPrefectClient(platform.api_url, auth_string=platform.prefect_auth_string) as client:
        try:
            client.read_work_pool(_docker.POOL)
        except ObjectNotFound:
            platform.ensure_docker_pool("taskscheduler-job:never-built", "Never")
    return _docker.POOL


@pytest.fixture(scope="module")
def admin(platform: LocalPlatform) -> Iterator[httpx.Client]:
    """A client of the platform's REST API holding the first admin token (TASKS_ADMIN_TOKEN)."""
    token = platform.credentials.admin_token.get_secret_value()
    with httpx.Client(
        base_url=platform.service_api_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture
def job_dir() -> Path:
    """A directory of the test's own that jobs on every lane of the test platforms may write."""
    path = SHARED / uuid.uuid4().hex
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    return path


@pytest.fixture
def fresh_platform(tmp_path: Path) -> Iterator[LocalPlatform]:
    """A second platform of the test's own, for tests that stop and restart one.

    Nothing points at it: talk to it through its ``api_url``.
    """
    with throwaway_platform(tmp_path / "platform") as started:
        yield started
