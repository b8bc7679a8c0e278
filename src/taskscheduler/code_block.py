"""The ``task-code`` block: one stored version of a task's definition and inline code.

Each version is its own block document named ``<task>-v<N>``, so the history of a task is
the list of its documents and a job names the exact version it ran (the flow run's ``code``
parameter). Documents are written once and never changed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import Field


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
        """The block document name of a version."""
        return f"{task}-v{version}"
