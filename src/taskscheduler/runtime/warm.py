"""A warm interpreter of the fast and sandbox lanes: runs jobs for its parent worker.

Started by the worker (``python -m taskscheduler.runtime.warm``), in a sandbox with no network
and no credential, it reads jobs as JSON lines on stdin and writes what happens as JSON lines
on a private copy of the original stdout. On the fast lane it imports Prefect and the generic
flow up front and serves job after job. With ``--single-use`` (the sandbox lane) it imports
nothing of Prefect, runs exactly one job and exits, so no job ever shares an interpreter, a
``/tmp`` or a process namespace with another; the job's limits (``rlimits``, set when its
worker has no cgroups to enforce them) are lowered for good before its code is loaded.

    → {"op": "run", "id", "task", "code", "source", "entry", "entrypoint", "parameters",
       "secrets" (their values, read by the worker), "attempt", "rlimits" (optional)}
    ← {"op": "log", "id", "level", "name", "message", "ts"}      (print output, logging records)
    ← {"op": "done", "id", "ok", "error"}                        (one per job)

It never talks to the Prefect API: the parent batches every state change and log line for all
its processes. File descriptor 1 is pointed at stderr, so output that bypasses ``sys.stdout``
(C extensions, subprocesses) cannot corrupt the protocol.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from taskscheduler.runtime import loading, redaction

PROTOCOL_LOGGER = "prefect.flow_runs"
PRINT_LOGGER = "prefect.flow_runs"
MAX_LINE_CHARS = 10_000
CACHE_SIZE = 512
RUN_ID_VARIABLE = "PREFECT__FLOW_RUN_ID"


class _Channel:
    """The line-oriented JSON channel to the parent; safe to use from the user's threads."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.job: str | None = None
        self.redact: redaction.Redact = redaction.unchanged

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, default=repr)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def log(self, level: int, name: str, message: str, ts: float | None = None) -> None:
        if self.job is None:
            return  # output between jobs belongs to nobody
        self.send(
            {
                "op": "log",
                "id": self.job,
                "level": level,
                "name": name,
                "message": self.redact(message)[:MAX_LINE_CHARS],
                "ts": ts if ts is not None else time.time(),
            }
        )


class _LineWriter:
    """A ``sys.stdout``/``sys.stderr`` stand-in that sends each complete line as a log record."""

    def __init__(self, channel: _Channel, level: int) -> None:
        self.channel = channel
        self.level = level
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.channel.log(self.level, PRINT_LOGGER, line)
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            self.channel.log(self.level, PRINT_LOGGER, self.buffer)
            self.buffer = ""

    def isatty(self) -> bool:
        return False


class _ToChannel(logging.Handler):
    """Sends the user's ``logging`` records to the parent."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__(level=logging.INFO)
        self.channel = channel
        self.addFilter(loading.UserRecords())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.channel.log(record.levelno, record.name, self.format(record), record.created)
        except Exception:  # noqa: BLE001 - a broken log line must not fail the job
            self.handleError(record)


class _Functions:
    """Loaded user functions: inline code by its immutable version name, files by mtime."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, float], Callable[..., Any]] = {}

    def get(self, job: dict[str, Any]) -> Callable[..., Any]:
        if job.get("code"):
            key = (str(job["code"]), 0.0)
            if key not in self.cache:
                self.cache[key] = loading.load_inline(
                    job.get("source") or "", job.get("entry") or "main", name=job["code"]
                )
        elif job.get("entrypoint"):
            path = str(job["entrypoint"]).rpartition(":")[0]
            key = (str(job["entrypoint"]), Path(path).stat().st_mtime)
            if key not in self.cache:
                self.cache[key] = loading.synchronous(loading.load_entrypoint(job["entrypoint"]))
        else:
            raise ValueError("a job needs either code or an entrypoint")
        if len(self.cache) > CACHE_SIZE:
            self.cache.pop(next(iter(self.cache)))
        return loading.synchronous(self.cache[key])


def _warm_up() -> None:
    """Import what jobs would otherwise import on their first run (Prefect, the runtime)."""
    importlib.import_module("taskscheduler.runtime.flow")


def _lower_limits(rlimits: dict[str, int]) -> None:
    """Lower this process's resource limits for good (``{"RLIMIT_AS": bytes, ...}``)."""
    for name, value in rlimits.items():
        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _run_one(channel: _Channel, functions: _Functions, job: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt of a job; its output goes to the channel as it happens."""
    channel.job = job["id"]
    try:
        _lower_limits(job.get("rlimits") or {})
        function = functions.get(job)
        with (
            # prefect.runtime.flow_run falls back to this without a flow run context (and
            # reads the run's other attributes from the API by that id).
            loading.environment({RUN_ID_VARIABLE: job["id"]}),
            loading.secret_values_environment(job.get("secrets") or {}) as redact,
        ):
            channel.redact = redact
            # The job's final state shows an error's message: it must not carry a secret.
            with redaction.redacted_errors(redact):
                result = function(**(job.get("parameters") or {}))
        channel.log(
            logging.INFO, PROTOCOL_LOGGER, f"Result: {repr(result)[: loading.MAX_RESULT_CHARS]}"
        )
        return {"op": "done", "id": job["id"], "ok": True}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        channel.log(
            logging.ERROR,
            PROTOCOL_LOGGER,
            "Encountered exception during execution:\n" + traceback.format_exc(),
        )
        return {"op": "done", "id": job["id"], "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        channel.job = None
        channel.redact = redaction.unchanged


def main(argv: list[str] | None = None) -> None:
    """Serve jobs from stdin until it closes (``--single-use``: serve one, then exit)."""
    single_use = "--single-use" in (sys.argv[1:] if argv is None else argv)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    channel = _Channel(protocol)
    if not single_use:
        _warm_up()
    sys.stdout = _LineWriter(channel, logging.INFO)
    sys.stderr = _LineWriter(channel, logging.WARNING)
    root = logging.getLogger()
    # Only the parent reports the user's records; a console handler here would cost every line.
    root.handlers = [_ToChannel(channel)]
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    functions = _Functions()
    channel.send({"op": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if line.strip():
            channel.send(_run_one(channel, functions, json.loads(line)))
            if single_use:
                # Not a return: threads or processes the job left behind must not keep the
                # sandbox alive (its PID namespace ends with this process).
                protocol.flush()
                os._exit(0)


if __name__ == "__main__":
    main()
