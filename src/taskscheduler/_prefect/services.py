"""``python -m taskscheduler._prefect.services``: Prefect's services in one process, apart from
the API processes, as ``prefect server services start`` runs them in the foreground, with the
server's timestamps bound as plain datetimes (``server.timestamps``): the event persister
writes every event's times, and binding Prefect's pendulum values was about a seventh of this
process's CPU (py-spy, 4,000 jobs a minute).

Its scheduler's recent-deployments loop leaves alone the new deployments that already have their
runs (``server.recent_deployments``): a task's creation makes them.

Prefect's command also runs its events distributor here, a consumer of every event that hands
each to this process's websocket subscribers; a process that serves no API has none, so it is
left off (the API processes run theirs, ``server.distributor``).

Prefect's command also refuses to start beside a services process it started in the background
(its PID file); the platform's supervisor, which starts this one, already keeps one.
"""

from __future__ import annotations

import asyncio
import contextlib

from prefect.cli._server_utils import _run_all_services
from prefect.server.services.base import Service
from prefect.settings import PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED, temporary_settings

from taskscheduler._prefect.server import recent_deployments, timestamps


def main() -> None:
    """Run every enabled service until stopped."""
    if not Service.enabled_services():
        raise SystemExit("no Prefect service is enabled")
    timestamps.plain_timestamps()
    recent_deployments.only_lacking_runs()
    with without_distributor(), contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_all_services())


def without_distributor() -> contextlib.AbstractContextManager[object]:
    """Prefect's settings with its events distributor off, for this process."""
    return temporary_settings({PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED: False})


if __name__ == "__main__":
    main()
