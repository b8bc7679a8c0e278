"""Shared test configuration: markers follow the folder a test lives in, and the whole session
is bounded in time.

A stuck platform would otherwise hold a CI run until CI's own limit kills it, saying nothing of
where it stopped. ``TASKS_TEST_SESSION_LIMIT`` (seconds; default 4500, under CI's 90 minutes)
bounds the session: when it passes, the session is interrupted, so fixtures still stop their
platforms, and the summary names the test that was running and shows every thread's stack.
If even the teardown hangs, the process ends after a grace period, saying so.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"
SESSION_LIMIT_SECONDS = float(os.environ.get("TASKS_TEST_SESSION_LIMIT", "4500"))
# Time left to teardown after the interruption (platforms stop in seconds each).
GRACE_SECONDS = 180.0
EXIT_CODE_OVER_TIME = 3


class SessionBound:
    """Interrupts the session once ``limit`` seconds have passed, remembering where it was."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.current = "(between tests)"
        self.report: str | None = None
        self.config: pytest.Config | None = None
        self._timer = threading.Timer(limit, self._expire)
        self._timer.daemon = True

    def start(self, config: pytest.Config) -> None:
        self.config = config
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        stacks = []
        for thread_id, frame in sys._current_frames().items():
            stacks.append(f"--- thread {thread_id}\n{''.join(traceback.format_stack(frame))}")
        self.report = (
            f"TEST SESSION OVER ITS LIMIT of {self.limit:.0f}s (TASKS_TEST_SESSION_LIMIT) "
            f"while running: {self.current}\n" + "\n".join(stacks)
        )
        # A signal to the main thread, not _thread.interrupt_main(): it also breaks a sleep
        # or a blocking wait there.
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGINT)
        last_resort = threading.Timer(GRACE_SECONDS, self._hard_exit)
        last_resort.daemon = True
        last_resort.start()

    def _hard_exit(self) -> None:
        if self.config is not None:  # out of pytest's capture, onto the terminal
            capture = self.config.pluginmanager.get_plugin("capturemanager")
            if capture is not None:
                capture.suspend_global_capture(in_=False)
        print(
            f"\n{self.report}\nteardown after the session limit took over "
            f"{GRACE_SECONDS:.0f}s; exiting",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_CODE_OVER_TIME)


_bound = SessionBound(SESSION_LIMIT_SECONDS)


def pytest_sessionstart(session: pytest.Session) -> None:
    _bound.start(session.config)
    # The client's config file (``tasks login``, ``make up``) lives under XDG_CONFIG_HOME:
    # tests never read nor write the real one of whoever runs them.
    config_home = Path(tempfile.mkdtemp(prefix="tasks-test-config-"))
    os.environ["XDG_CONFIG_HOME"] = str(config_home)
    atexit.register(shutil.rmtree, config_home, ignore_errors=True)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _bound.current = nodeid


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _bound.report is not None:
        terminalreporter.section("session limit", sep="!")
        terminalreporter.write_line(_bound.report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _bound.cancel()
    if _bound.report is not None:
        session.exitstatus = EXIT_CODE_OVER_TIME


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under ``tests/integration/`` so ``-m "not integration"`` stays fast."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
