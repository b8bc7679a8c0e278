"""The respawn wrapper with real child processes (``sh``), no platform."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from taskscheduler import respawn


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(respawn, "STARTUP_SECONDS", 0.0)
    monkeypatch.setattr(respawn, "FIRST_DELAY", 0.05)


def test_a_failure_at_start_up_is_returned_not_retried(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    status = respawn.Respawner(["sh", "-c", f"echo x >> {runs}; exit 3"]).run()
    assert status == 3
    assert runs.read_text().count("x") == 1


def test_a_command_that_exits_later_is_started_again_until_signalled(
    tmp_path: Path, quick: None, capfd: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    respawner = respawn.Respawner(["sh", "-c", f"echo x >> {runs}; exit 1"])

    def stop_after_three() -> None:
        while not runs.exists() or runs.read_text().count("x") < 3:
            time.sleep(0.01)
        respawner.on_signal(signal.SIGTERM, None)

    stopper = threading.Thread(target=stop_after_three)
    stopper.start()
    status = respawner.run()
    stopper.join(5)
    assert status == 1
    assert runs.read_text().count("x") >= 3
    assert "respawn: sh exited with status 1" in capfd.readouterr().err


def test_a_signal_is_passed_on_once_and_ends_the_wrapper(tmp_path: Path) -> None:
    """A second SIGTERM would make Prefect's worker SIGKILL itself: only one goes through."""
    seen = tmp_path / "seen"
    script = (
        f"trap 'echo TERM >> {seen}' TERM; echo ready >> {seen};"
        " i=0; while [ $i -lt 40 ]; do sleep 0.05; i=$((i+1)); done; exit 0"
    )
    respawner = respawn.Respawner(["sh", "-c", script])

    def signal_twice() -> None:
        while not seen.exists():
            time.sleep(0.01)
        respawner.on_signal(signal.SIGTERM, None)
        respawner.on_signal(signal.SIGTERM, None)

    threading.Thread(target=signal_twice).start()
    assert respawner.run() == 0
    # One TERM, and one start: no restart after a signal.
    assert seen.read_text().split() == ["ready", "TERM"]
