"""``/v1/status``: the platform's health as ``tasks status`` shows it (read scope)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from taskscheduler.api.routes import ERRORS
from taskscheduler.models.status import Snapshot
from taskscheduler.services import monitoring

router = APIRouter(prefix="/v1/status", tags=["status"], responses=ERRORS)


@router.get("", response_model=Snapshot, name="status.show")
async def read_status(request: Request) -> Snapshot:
    """Server and database health, pools and their workers, the backlog, late jobs, the last
    hour's failures, the canary and the platform's processes, taken now."""
    return await monitoring.take_snapshot(
        request.app.state.settings, engine=request.app.state.engine
    )
