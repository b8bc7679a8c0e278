"""The Prefect server application, with the fast lane's set-based endpoints mounted in its API.

``create_app`` is what ``prefect server start`` serves (``prefect.server.api.server.create_app``,
with the same ``PREFECT__SERVER_*`` switches), plus our router in the API sub-application, so
every API process — one, or several behind ``--workers`` — carries it.
"""

from __future__ import annotations

from fastapi import FastAPI
from prefect.server.api.server import create_app as prefect_create_app
from starlette.routing import Mount

from taskscheduler._prefect.server import (
    csrf,
    distributor,
    recent_deployments,
    routes,
    timestamps,
)


def create_app(*, webserver_only: bool = False, final: bool = False) -> FastAPI:
    """Prefect's server app (cached by Prefect per settings), with our routes added once and its
    CSRF check done by ``csrf``, in a process whose timestamps bind as plain datetimes
    (``timestamps``), whose events distributor reads in batches (``distributor``) and whose
    scheduler, if it runs here, re-schedules no new deployment that has its runs
    (``recent_deployments``)."""
    timestamps.plain_timestamps()
    distributor.batched_distributor()
    recent_deployments.only_lacking_runs()
    app = prefect_create_app(webserver_only=webserver_only, final=final)
    csrf.take_over(app)
    api = next(r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, FastAPI))
    if not any(getattr(r, "path", "").startswith(routes.PREFIX) for r in api.routes):
        api.include_router(routes.router)
    return app


def factory() -> FastAPI:
    """For ``uvicorn --factory`` with several worker processes (the switches come from the
    environment, as Prefect's own factory reads them)."""
    return create_app()
