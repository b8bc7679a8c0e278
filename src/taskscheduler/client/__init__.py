"""The task scheduler's REST API from Python: ``Client`` (blocking) and ``AsyncClient``.

    from taskscheduler import errors
    from taskscheduler.client import Client

    with Client("http://127.0.0.1:8000", token) as api:   # or TASKS_URL / TASKS_TOKEN,
        job = api.run("hello")                          # or what `tasks login` saved
        print(api.wait(job.id, timeout=60).state)
        try:
            api.get("nope")
        except errors.TaskNotFound:                     # the SDK's errors, the same classes
            ...

Answers are the models the server returns (``taskscheduler.models``, ``taskscheduler.wire``).
It imports neither Prefect, FastAPI nor SQLAlchemy, nor any of the server's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskscheduler.client.aio import AsyncClient
    from taskscheduler.client.config import Config
    from taskscheduler.client.sync import Client

__all__ = ["AsyncClient", "Client", "Config"]

# Loaded on first use (PEP 562): ``tasks --help`` reads the config module without httpx.
_HOMES = {"AsyncClient": "aio", "Client": "sync", "Config": "config"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
