"""The created events of many deployments made in one call, with what they name read once.

Prefect's ``deployment_created_event`` names a deployment's flow, work queue and work pool, and
reads the three (``_deployment_related_resources``) for every deployment: three queries each
when ``new_deployments`` creates hundreds of one flow on one pool. These are the same events,
with the three read once for each pair of flow and queue; the contract test
``test_deployments_created_in_bulk_have_the_rows_prefects_routes_write`` holds them equal to
Prefect's.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from prefect._internal.uuid7 import uuid7
from prefect.server.events.schemas.events import Event
from prefect.server.models.events import _deployment_related_resources
from sqlalchemy.ext.asyncio import AsyncSession

# Prefect's db_injector hides the coroutine from mypy; typed here once.
_related = cast(Callable[..., Awaitable[Any]], _deployment_related_resources)


async def created_events(session: AsyncSession, rows: Sequence[Any], at: Any) -> list[Event]:
    """The deployments' created events, as ``deployment_created_event`` makes them, with the
    flow, work queue and work pool they name read once for each pair of flow and queue
    (Prefect reads the three for each deployment)."""
    shared: dict[tuple[Any, Any], list[dict[str, str]]] = {}
    events = []
    for row in rows:
        key = (row.flow_id, row.work_queue_id)
        if key not in shared:
            shared[key] = await _related(session, _Shared(*key))
        events.append(
            Event(
                occurred=at,
                event="prefect.deployment.created",
                resource={
                    "prefect.resource.id": f"prefect.deployment.{row.id}",
                    "prefect.resource.name": row.name,
                },
                related=shared[key] + _own_related(row),
                id=uuid7(),
            )
        )
    return events


@dataclasses.dataclass(frozen=True)
class _Shared:
    """What ``_deployment_related_resources`` reads for a deployment, without what is the
    deployment's own."""

    flow_id: uuid.UUID
    work_queue_id: uuid.UUID | None
    storage_document_id: None = None
    infrastructure_document_id: None = None
    concurrency_limit_id: None = None


def _own_related(row: Any) -> list[dict[str, str]]:
    """The rest of ``_deployment_related_resources``: the deployment's own documents and
    concurrency limit, in its order."""
    documents = (("storage", row.storage_document_id),
                 ("infrastructure", row.infrastructure_document_id))  # fmt: skip
    related = [
        {"prefect.resource.id": f"prefect.block-document.{document}", "prefect.resource.role": role}
        for role, document in documents
        if document
    ]
    if row.concurrency_limit_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.concurrency-limit.{row.concurrency_limit_id}",
                "prefect.resource.role": "concurrency-limit",
            }
        )
    return related
