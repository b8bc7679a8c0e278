"""Loaded (as Python loads ``sitecustomize``) by every process of a benchmark configuration that
asks for one of the platform's earlier behaviours, through the ``PYTHONPATH`` ``bench._platform``
gives it, to measure what a change bought side by side with the platform as it is:

- ``BENCH_NAGLE=on``: the multi-process Prefect API as it was before 2026-12-02 late morning,
  with Nagle's algorithm left on its connections (``taskscheduler._prefect.server.nodelay``);
- ``BENCH_PENDULUM=on``: Prefect's pendulum timestamps bound to PostgreSQL as they are
  (``taskscheduler._prefect.server.timestamps`` not installed);
- ``BENCH_EVENT_READS=per-run``: the fast lane's state events naming their related resources
  through Prefect's reads, run by run (``taskscheduler._prefect.server.related`` skipped).
"""

import os

if os.environ.get("BENCH_NAGLE") == "on":
    from taskscheduler._prefect.server import nodelay

    nodelay.no_delay = lambda transport: None

if os.environ.get("BENCH_PENDULUM") == "on":
    from taskscheduler._prefect.server import timestamps

    timestamps.plain_timestamps = lambda: None

if os.environ.get("BENCH_EVENT_READS") == "per-run":
    from taskscheduler._prefect.server import related

    async def _per_run(db, session, runs):  # type: ignore[no-untyped-def]
        return None

    related.remember = _per_run
