"""Loaded (as Python loads ``sitecustomize``) by every process of a benchmark configuration that
asks for one of the platform's earlier behaviours, through the ``PYTHONPATH`` ``bench._platform``
gives it, to measure what a change bought side by side with the platform as it is:

- ``BENCH_NAGLE=on``: the multi-process Prefect API as it was before 2026-12-02 late morning,
  with Nagle's algorithm left on its connections (``taskscheduler._prefect.server.nodelay``);
- ``BENCH_PENDULUM=on``: Prefect's pendulum timestamps bound to PostgreSQL as they are
  (``taskscheduler._prefect.server.timestamps`` not installed);
- ``BENCH_EVENT_READS=per-run``: the fast lane's state events naming their related resources
  through Prefect's reads, run by run (``taskscheduler._prefect.server.related`` skipped);
- ``BENCH_CSRF=prefect``: Prefect's own CSRF middleware, a database read on every state-changing
  call (``taskscheduler._prefect.server.csrf`` not put in its place);
- ``BENCH_DISTRIBUTOR=prefect``: Prefect's events distributor, reading one event a Redis
  round-trip in each API process and running in the services process too
  (``taskscheduler._prefect.server.distributor``, ``taskscheduler._prefect.services``);
- ``BENCH_RECENT=prefect``: Prefect's recent-deployments scheduler, generating again the runs of
  every new deployment, which its creation made (``taskscheduler._prefect.server.
  recent_deployments`` not installed).
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

if os.environ.get("BENCH_CSRF") == "prefect":
    from taskscheduler._prefect.server import csrf

    csrf.take_over = lambda app: None

if os.environ.get("BENCH_DISTRIBUTOR") == "prefect":
    import contextlib

    from taskscheduler._prefect import services
    from taskscheduler._prefect.server import distributor

    distributor.batched_distributor = lambda: None
    services.without_distributor = contextlib.nullcontext

if os.environ.get("BENCH_RECENT") == "prefect":
    from taskscheduler._prefect.server import recent_deployments

    recent_deployments.only_lacking_runs = lambda: None
