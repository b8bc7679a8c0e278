"""Blocks: ours (the ``task-code`` block) and the registration of Prefect's own block types.

``TaskCode``: one stored version of a task's definition and inline code.

Each version is its own block document named ``<task>-v<N>``, so the history of a task is
the list of its documents and a job names the exact version it ran (the flow run's ``code``
parameter). Documents are written once and never changed.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import Field

from taskscheduler import policy


class TaskCode(Block):
    """A version of a task: its inline source (if any), entry function and full definition."""

    _block_type_name: ClassVar[str | None] = "Task Code"
    _block_type_slug: ClassVar[str | None] = "task-code"
    _description: ClassVar[str | None] = (
        "One immutable version of a task-scheduler task: inline Python source with its "
        "entry function and content hash, plus the task definition it was saved with."
    )

    task: str = Field(description="Name of the task (and of its deployment).")
    version: int = Field(ge=1, description="Version number, from 1, one more on every change.")
    sha256: str = Field(description="SHA-256 of the source (or of the entrypoint reference).")
    source: str | None = Field(default=None, description="Inline Python source, if any.")
    entrypoint: str | None = Field(default=None, description="path/to/file.py:function, if any.")
    entry: str = Field(default="main", description="Entry function of the inline source.")
    definition: dict[str, Any] = Field(
        default_factory=dict, description="The task definition (TaskSpec) without its source."
    )

    @staticmethod
    def document_name(task: str, version: int) -> str:
        """The block document name of a version (``policy.code_document``)."""
        return policy.code_document(task, version)


async def register_prefect_block_types() -> None:
    """Register Prefect's own block types in its database once, before several API processes
    start (what each process does at start-up, ``run_block_auto_registration``).

    Started together on a fresh database (``prefect server start --workers N``, or N replicas),
    they race to insert the same rows: the loser fails on ``uq_block_type__slug``, and its
    failed start-up stops the whole server (2 of 5 starts of the two-process topology here,
    2026-11-27). Registered once beforehand, the processes start with
    ``PREFECT_API_BLOCKS_REGISTER_ON_START=false``, as they start with migrations off once the
    database is migrated. ``python -m taskscheduler._prefect.blocks`` with the server's
    environment.
    """
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    session = await provide_database_interface().session()
    async with session:
        await run_block_auto_registration(session=session)


if __name__ == "__main__":
    asyncio.run(register_prefect_block_types())
