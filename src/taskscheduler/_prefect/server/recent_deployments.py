"""Prefect's recent-deployments scheduler, without the deployments that already have their runs.

Prefect's scheduler service has two loops. The main one schedules the deployments whose
schedules lack runs: fewer than ``min_runs`` waiting, or none ``min_scheduled_time`` ahead. The
recent one, every ``recent_deployments_loop_seconds`` (5 s), schedules every deployment updated
in the last loop and a second, lacking runs or not ("scheduling is idempotent"). A task's
creation makes its first runs in the same transaction (``new_deployments``), so the recent loop
generated each new task's runs again and inserted them, to be refused by their idempotency
keys: a read of the deployment, a read of its schedules and the refused insert for every task,
about 40% of the services process's CPU while tasks were created in bulk (py-spy, 2,000 tasks
in 33 s).

Here the recent loop takes the recently updated deployments that lack runs by the main loop's
own test. A deployment whose schedule changed, that was resumed or made by Prefect's routes
(none of which makes runs) lacks them and is taken as before; so is a new task whose first run
was due at once, as soon as that run is no longer ahead (the main loop would take it too).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.services import scheduler
from prefect.settings.context import get_current_settings

# Prefect's query, kept for ``query`` (and for the benchmark's earlier behaviour).
PREFECTS = scheduler._get_select_recent_deployments_to_schedule_query


def query(
    db: PrefectDBInterface, deployment_batch_size: int, loop_seconds: float
) -> sa.Select[tuple[uuid.UUID]]:
    """Prefect's recent-deployments query, narrowed to the deployments its main loop would
    schedule."""
    settings = get_current_settings().server.services.scheduler
    lacking = scheduler._get_select_deployments_to_schedule_query(
        db, deployment_batch_size, settings.min_runs, settings.min_scheduled_time
    )
    recent = PREFECTS(db, deployment_batch_size, loop_seconds)
    return recent.where(lacking.whereclause) if lacking.whereclause is not None else recent


def only_lacking_runs() -> None:
    """Make this process's recent-deployments loop use ``query``."""
    scheduler._get_select_recent_deployments_to_schedule_query = query
