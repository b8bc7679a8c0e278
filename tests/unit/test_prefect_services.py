"""``python -m taskscheduler._prefect.services``: Prefect's services as its command runs them,
with plain timestamps."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from prefect.cli import _server_utils
from prefect.server.services.base import Service
from prefect.server.utilities.database import Timestamp

from taskscheduler._prefect import services
from taskscheduler.platform import catalogue


def test_prefects_command_runs_this_function_in_the_foreground() -> None:
    """What the module relies on: ``prefect server services start`` runs
    ``_run_all_services`` with ``asyncio.run``."""
    assert inspect.iscoroutinefunction(_server_utils._run_all_services)
    from prefect.cli import server

    source = inspect.getsource(server.start_services)
    assert "asyncio.run(_run_all_services())" in source


def test_the_services_run_with_plain_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[bool] = []

    def run(coroutine: Any) -> None:
        coroutine.close()
        ran.append(hasattr(Timestamp.process_bind_param, "__wrapped__"))

    monkeypatch.setattr(asyncio, "run", run)
    services.main()
    assert ran == [True]


def test_no_enabled_service_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Service, "enabled_services", classmethod(lambda cls: []))
    with pytest.raises(SystemExit, match="no Prefect service"):
        services.main()


def test_the_platform_recognises_both_services_processes() -> None:
    """Ours, and what platforms started before it ran (so ``down`` still stops those)."""
    ours = ["/venv/bin/python", "-m", catalogue.SERVICES_MODULE]
    former = ["/venv/bin/python", "/venv/bin/prefect", "server", "services", "start"]
    for cmdline in (ours, former):
        assert catalogue.recognises(catalogue.SERVICES, cmdline)
        assert not catalogue.recognises(catalogue.SERVER, cmdline)
