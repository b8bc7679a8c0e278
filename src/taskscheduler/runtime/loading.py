"""Loading and calling a job's code, without Prefect: what every lane's runtime shares.

The sandbox lane's interpreters import this and nothing of Prefect (a fresh sandbox per job
must start in milliseconds); ``execution`` (inside a flow run) and ``warm`` (the fast lane)
use the same functions, so user code is loaded, given its secrets and called the same way on
every lane.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import linecache
import logging
import os
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskscheduler.runtime import redaction

MAX_RESULT_CHARS = 2000


@contextmanager
def secret_values_environment(values: Mapping[str, str]) -> Iterator[redaction.Redact]:
    """Set secret values as environment variables and redact them from every log record while
    they are set (``redaction``).

    Yields a function that redacts the values from any text.
    """
    redact = redaction.redactor(values.values())
    with redaction.redacted_log_records(redact), environment(values):
        yield redact


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the length of the block, then put back what was there."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in previous.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


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


def synchronous(function: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine function made synchronous, so the timeout can interrupt it the same way."""
    if not inspect.iscoroutinefunction(function):
        return function

    import asyncio  # only for coroutine functions: a sandbox starts without it

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(function(*args, **kwargs))

    return run


# Libraries of the platform itself: their records are not the user's (Prefect's own loggers
# already reach the API).
_PLATFORM_LOGGERS = (
    "prefect",
    "EventsWorker",
    "APILogWorker",
    "httpx",
    "httpcore",
    "websockets",
    "asyncio",
    "docket",
    "urllib3",
)


class UserRecords(logging.Filter):
    """Pass only records that the user's code logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        top = record.name.split(".", 1)[0]
        return top not in _PLATFORM_LOGGERS
