"""The whole-session bound of tests/conftest.py: a stuck test ends the session, saying where."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).parents[1] / "conftest.py"

STUCK = """
import time

def test_quick():
    pass

def test_stuck():
    time.sleep(120)

def test_never_reached():
    pass
"""


def test_a_stuck_session_is_interrupted_naming_the_test_it_was_in(tmp_path: Path) -> None:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_stuck.py").write_text(STUCK)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q"],
        cwd=tmp_path,
        env={"TASKS_TEST_SESSION_LIMIT": "3", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "OVER ITS LIMIT of 3s" in result.stdout
    assert "while running: test_stuck.py::test_stuck" in result.stdout
    assert "time.sleep(120)" in result.stdout  # the stuck thread's stack
    assert "1 passed" in result.stdout  # the quick test; the last one never ran
