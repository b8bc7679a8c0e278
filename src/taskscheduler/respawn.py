"""Keep a worker running: run its command again when it exits by itself, with a backoff.

``python -m taskscheduler.respawn COMMAND...`` is what ``restart: unless-stopped`` is in the
compose stack, for the local platform's workers and watchdog. Prefect's worker exits for good
when a call fails at the wrong moment (a 500 from an overloaded server while it submits a run);
without this, a platform with a backlog lost its process lane until someone noticed.

- The command runs in a process group of its own; SIGTERM and SIGINT are passed on to it once,
  and this process exits with its exit status (no restart after a signal).
- A command that fails within ``STARTUP_SECONDS`` of its very first start is a start-up
  failure, not a crash: this exits with its status, so ``up`` reports it at once.
- Later exits are restarted after 1, 2, 4 … at most 30 s; the delay resets once a run has
  lasted a minute. Each restart is written to stderr (the service's log).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from types import FrameType

STARTUP_SECONDS = 10.0
STABLE_SECONDS = 60.0
FIRST_DELAY, MAX_DELAY = 1.0, 30.0


class Respawner:
    """Runs one command until it is signalled to stop."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.child: subprocess.Popen[bytes] | None = None
        self.signalled: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Stop restarting; pass the signal on to the command."""
        self.stopping.set()
        self._pass_on(signum)

    def _pass_on(self, signum: int) -> None:
        """Signal the running command, once: a second SIGTERM makes Prefect's worker SIGKILL
        itself instead of shutting down."""
        child = self.child
        if child is not None and child is not self.signalled and child.poll() is None:
            self.signalled = child
            child.send_signal(signum)

    def run(self) -> int:
        """Run the command, again after each exit of its own; its last exit status."""
        delay, first = FIRST_DELAY, True
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command, process_group=0)
            if self.stopping.is_set():  # signalled while starting it
                self._pass_on(signal.SIGTERM)
            status = self.child.wait()
            lasted = time.monotonic() - started
            if self.stopping.is_set() or (first and lasted < STARTUP_SECONDS):
                return status
            first = False
            if lasted >= STABLE_SECONDS:
                delay = FIRST_DELAY
            print(
                f"respawn: {self.command[0]} exited with status {status} after {lasted:.0f} s;"
                f" starting it again in {delay:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            if self.stopping.wait(delay):
                return status
            delay = min(delay * 2, MAX_DELAY)


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m taskscheduler.respawn COMMAND [ARG...]", file=sys.stderr)
        return 2
    respawner = Respawner(command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, respawner.on_signal)
    return respawner.run()


if __name__ == "__main__":
    raise SystemExit(main())
