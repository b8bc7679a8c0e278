"""``/healthz`` and ``/metrics``: open, for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from taskscheduler.api import schemas
from taskscheduler.sdk import AsyncTaskScheduler

router = APIRouter(tags=["health"])
log = logging.getLogger("taskscheduler.api")
CHECK_SECONDS = 5.0


@router.get(
    "/healthz",
    response_model=schemas.Health,
    responses={503: {"model": schemas.Health, "description": "Something does not answer."}},
    name="health",
)
async def healthz(request: Request) -> JSONResponse:
    """200 when the Prefect server and the database both answer; 503 naming what does not."""
    prefect = await _check(_scheduler(request).health())
    database = await _check(_database(request))
    ok = prefect == database == "ok"
    body = schemas.Health(status="ok" if ok else "unavailable", prefect=prefect, database=database)
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    name="metrics",
)
async def metrics(request: Request) -> Response:
    """Request counts and latencies of this API process, and jobs by state."""
    collected = request.app.state.metrics
    try:
        collected.jobs.counts = await asyncio.wait_for(
            _scheduler(request).job_counts(), CHECK_SECONDS
        )
    except Exception:
        log.warning("could not count jobs for /metrics", exc_info=True)
    try:
        await asyncio.wait_for(collected.platform.refresh(request.app.state.engine), CHECK_SECONDS)
    except Exception:
        log.warning("could not read platform health for /metrics", exc_info=True)
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)


async def _database(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_SECONDS)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy", said in words
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def _scheduler(request: Request) -> AsyncTaskScheduler:
    """The SDK as the health checks use it: no caller, the app's Prefect connection."""
    return AsyncTaskScheduler(request.app.state.settings, connection=request.app.state.prefect)
