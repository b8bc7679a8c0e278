"""Running a job inside its flow run: load the task's code, then call it as a Prefect task.

The user's function becomes a Prefect task so that Prefect's own machinery gives it retries
with exponential backoff and jitter (visible as AwaitingRetry/Retrying states), a timeout per
attempt, and ``print`` output in the run's logs. Exceptions from user code propagate, so
Prefect marks the job failed with the traceback in its logs.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import linecache
import logging
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE
from prefect.logging.handlers import APILogHandler

from taskscheduler.code_block import TaskCode

MAX_RESULT_CHARS = 2000


def run_job(
    *,
    task: str,
    code: str | None,
    entrypoint: str | None,
    entry: str,
    parameters: dict[str, Any],
    retries: int,
    retry_delay: float,
    retry_jitter: float,
    timeout: float | None,
) -> Any:
    """Run the task's function once, with its retry and timeout policy; return its result."""
    logger = get_run_logger()
    if code is not None:
        block = TaskCode.load(code)
        logger.info("Running %s version %d (sha256 %s)", task, block.version, block.sha256[:12])
        function = load_inline(block.source or "", block.entry, name=code)
    elif entrypoint is not None:
        logger.info("Running %s from %s", task, entrypoint)
        function = load_entrypoint(entrypoint)
    else:
        raise ValueError("a job needs either code or an entrypoint")
    attempt = prefect_task(
        _synchronous(function),
        name=task,
        retries=retries,
        retry_delay_seconds=[retry_delay * 2**n for n in range(retries)] if retries else 0,
        retry_jitter_factor=retry_jitter or None,
        timeout_seconds=timeout,
        log_prints=True,
        persist_result=False,
        cache_policy=NO_CACHE,
    )
    try:
        with _user_logs_to_prefect():
            result = attempt(**parameters)
        logger.info("Result: %s", repr(result)[:MAX_RESULT_CHARS])
    finally:
        # Send the job's output before its final state is set, so that whoever sees the job
        # ended also finds all its logs.
        APILogHandler().flush()
    return result


def load_inline(source: str, entry: str, *, name: str) -> Callable[..., Any]:
    """Execute inline source as a fresh module and return its entry function."""
    filename = f"<task-code {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"taskcode_{name.replace('-', '_')}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - running user code is the job
    function = module.__dict__.get(entry)
    if not callable(function):
        raise LookupError(f"the code defines no function {entry!r}")
    return function  # type: ignore[no-any-return]


def load_entrypoint(entrypoint: str) -> Callable[..., Any]:
    """Import ``path/to/file.py:function`` from the working directory and return the function."""
    path, _, name = entrypoint.rpartition(":")
    spec = importlib.util.spec_from_file_location(Path(path).stem, Path(path).resolve())
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, name, None)
    function = getattr(function, "fn", function)  # a Prefect @flow or @task: call its function
    if not callable(function):
        raise LookupError(f"{path} defines no function {name!r}")
    return function  # type: ignore[no-any-return]


def _synchronous(function: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine function made synchronous, so the timeout can interrupt it the same way."""
    if not inspect.iscoroutinefunction(function):
        return function

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(function(*args, **kwargs))

    return run


# Libraries of the platform itself: their records are not the user's (Prefect's own loggers
# already reach the API).
_PLATFORM_LOGGERS = (
    "prefect", "EventsWorker", "APILogWorker", "httpx", "httpcore", "websockets", "asyncio",
    "docket", "urllib3",
)


class _UserRecords(logging.Filter):
    """Pass only records that the user's code logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        top = record.name.split(".", 1)[0]
        return top not in _PLATFORM_LOGGERS


@contextmanager
def _user_logs_to_prefect() -> Iterator[None]:
    """Send what user code logs with the standard ``logging`` module to the run's logs."""
    root = logging.getLogger()
    handler = APILogHandler(level=logging.INFO)
    handler.addFilter(_UserRecords())
    previous = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
