"""A task's code versions: one immutable ``TaskCode`` block document per version."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas import objects
from prefect.client.schemas.actions import BlockDocumentCreate
from prefect.exceptions import ObjectNotFound

from taskscheduler import models
from taskscheduler._prefect import mapping
from taskscheduler._prefect.blocks import TaskCode
from taskscheduler._prefect.records import Deployment, StoredVersion
from taskscheduler._prefect.session import PAGE, GatewayBase, Session
from taskscheduler.policy import code_document


class CodeVersions(GatewayBase):
    """The gateway's code-version operations (a part of ``gateway.Gateway``)."""

    async def save_version(
        self, session: Session, spec: models.TaskSpec, version: int
    ) -> uuid.UUID:
        """Store one version of a task's code (block documents are immutable once written);
        returns the document's id."""
        # Read afresh: Prefect's route would answer a stale id as a name conflict.
        block = await self._code_block_ids(session.client, fresh=True)
        [document] = version_documents(block, [(spec, version)])
        created = await session.client.create_block_document(
            BlockDocumentCreate.model_validate(document)
        )
        return created.id

    async def delete_version(self, session: Session, document_id: uuid.UUID) -> None:
        """Remove one stored version (taking back a write that failed part-way)."""
        with contextlib.suppress(ObjectNotFound):
            await session.client.delete_block_document(document_id)

    async def read_versions(self, session: Session, task: str) -> list[models.CodeVersion]:
        """Every stored version of a task, oldest first."""
        documents = await self._version_documents(session.client, task)
        blocks = [TaskCode.model_validate(d.data) for d in documents]
        return [
            models.CodeVersion(version=b.version, sha256=b.sha256)
            for b in sorted((b for b in blocks if b.task == task), key=lambda b: b.version)
        ]

    async def current_versions(
        self, session: Session, deployments: Sequence[Deployment]
    ) -> list[StoredVersion | None]:
        """The current code version of each deployment this platform made (None for the
        others), read in one call rather than one per task."""
        flow_id = await self._flow_id(session.client)
        if any(d.flow_id != flow_id and mapping.version_of(d.version) for d in deployments):
            flow_id = await self._flow_id(session.client, fresh=True)  # remembered one gone?
        names = {
            d.id: code_document(d.name, version)
            for d in deployments
            if d.flow_id == flow_id and (version := mapping.version_of(d.version)) is not None
        }
        found = await self._read_versions_named(session.client, list(names.values()))
        return [
            mapping.stored_version(block)
            if d.id in names and (block := found.get(names[d.id])) is not None
            else None
            for d in deployments
        ]

    async def delete_versions(self, session: Session, task: str) -> None:
        """Remove every stored version of a task (when the task is deleted)."""
        for document in await self._version_documents(session.client, task):
            if document.data.get("task") == task:
                await session.client.delete_block_document(document.id)

    async def _read_versions_named(
        self, client: PrefectClient, names: Sequence[str]
    ) -> dict[str, TaskCode]:
        """Stored versions by document name (those that exist), one call per page of names."""
        found: dict[str, TaskCode] = {}
        for start in range(0, len(names), PAGE):
            response = await client.request(
                "POST",
                "/block_documents/filter",
                json={
                    "block_documents": {"name": {"any_": list(names[start : start + PAGE])}},
                    "block_types": {"slug": {"any_": [TaskCode.get_block_type_slug()]}},
                    "limit": PAGE,
                },
            )
            for document in objects.BlockDocument.model_validate_list(response.json()):
                if document.name is not None:
                    found[document.name] = TaskCode.model_validate(document.data)
        return found

    async def _version_documents(
        self, client: PrefectClient, task: str
    ) -> list[objects.BlockDocument]:
        """The task-code documents named like ``<task>-v…`` (the client has no such filter)."""
        documents: list[objects.BlockDocument] = []
        while True:
            response = await client.request(
                "POST",
                "/block_documents/filter",
                json={
                    "block_documents": {"name": {"like_": f"{task}-v%"}},
                    "block_types": {"slug": {"any_": [TaskCode.get_block_type_slug()]}},
                    "limit": PAGE,
                    "offset": len(documents),
                },
            )
            page = objects.BlockDocument.model_validate_list(response.json())
            documents.extend(page)
            if len(page) < PAGE:
                return documents


def version_documents(
    block: tuple[uuid.UUID, uuid.UUID], versions: Sequence[tuple[models.TaskSpec, int]]
) -> list[dict[str, Any]]:
    """Prefect's ``BlockDocumentCreate`` of each version, as JSON, for the ``TaskCode`` block
    type and schema ids ``block``.

    What ``Block._to_block_document`` makes of a ``TaskCode`` (``asave``'s conversion, which
    regenerates the block's JSON schema for every field: 35 to 80 ms a version), built from the
    fields directly: a ``TaskCode`` holds no secrets and no nested blocks.
    ``tests/unit/test_code_documents.py`` holds the two equal."""
    type_id, schema_id = block
    return [
        {
            "name": code_document(spec.name, version),
            "data": document_data(mapping.version_block(spec, version)),
            "block_schema_id": str(schema_id),
            "block_type_id": str(type_id),
            "is_anonymous": False,
        }
        for spec, version in versions
    ]


def document_data(block: TaskCode) -> dict[str, Any]:
    """The ``data`` of a ``TaskCode``'s block document, as ``Block._to_block_document`` has it."""
    return block.model_dump(mode="json", by_alias=True, include=set(TaskCode.model_fields))
