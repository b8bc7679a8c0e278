"""A platform never takes over the door of another platform's job gateway."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskscheduler import errors
from taskscheduler.gate import environment as job_environment
from taskscheduler.platform.gate import Gate
from taskscheduler.settings import Settings


@pytest.fixture
def door() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="door-", dir="/tmp"))  # short: a socket path's limit
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_live_gateway_on_the_door_is_left_alone(door: Path, tmp_path: Path) -> None:
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(door / job_environment.DOOR_SOCKET))
    other.listen()
    try:
        gate = Gate(Settings(door_dir=door, state_dir=tmp_path), None, None)  # type: ignore[arg-type]
        assert gate.ready()
        with pytest.raises(errors.PlatformUnavailable, match="another platform's job gateway"):
            gate._spawn()
        assert (door / job_environment.DOOR_SOCKET).exists()
    finally:
        other.close()


def test_a_stale_socket_is_not_taken_for_a_gateway(door: Path, tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(door / job_environment.DOOR_SOCKET))
    stale.close()  # the file stays, nobody listens
    gate = Gate(Settings(door_dir=door, state_dir=tmp_path), None, None)  # type: ignore[arg-type]
    assert not gate.ready()
