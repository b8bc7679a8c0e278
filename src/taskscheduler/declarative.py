"""Declarative task files: YAML (or JSON) documents that ``tasks apply`` upserts.

A file holds one task (a mapping with the task's fields) or several (``tasks: [...]``).
``code_file: hello.py`` reads inline code from a file next to the task file, so code stays
editable as Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from taskscheduler import errors, models

SUFFIXES = (".yaml", ".yml", ".json")


class Applied(BaseModel):
    """What ``apply`` did with one task file."""

    name: str
    action: Literal["created", "updated", "unchanged"]
    file: str


def replacing(before: models.Task, spec: models.TaskSpec) -> dict[str, Any]:
    """The change set that makes an existing task what its file says: every field of the
    file's spec (it replaces the definition). Refused for deployments we did not create."""
    if before.spec is None:
        raise errors.InvalidTask(
            "name", f"{spec.name!r} is a deployment this platform did not create"
        )
    return dict(spec)


def updated(before: models.Task, after: models.Task, file: Path) -> Applied:
    """An existing task's outcome: a new version, or none."""
    action: Literal["updated", "unchanged"] = (
        "unchanged" if after.version == before.version else "updated"
    )
    return Applied(name=after.name, action=action, file=str(file))


def batches(specs: Sequence[models.TaskSpec]) -> Iterator[list[models.TaskSpec]]:
    """``specs`` in slices one ``create_many`` takes."""
    for start in range(0, len(specs), models.MAX_NEW_TASKS):
        yield list(specs[start : start + models.MAX_NEW_TASKS])


def load(path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every task definition under ``path`` (a file, or a folder searched recursively)."""
    if not path.exists():
        raise errors.InvalidTask("path", f"{path} does not exist")
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    )
    for file in files:
        for data in _documents(file):
            yield file, _resolve_code_file(file, data)


def _documents(file: Path) -> Iterator[dict[str, Any]]:
    # Here, not above: the client and the CLI load this module on every command, YAML only
    # when they read task files.
    import yaml

    try:
        documents = list(yaml.safe_load_all(file.read_text()))
    except yaml.YAMLError as exc:
        raise errors.InvalidTask("file", f"{file}: not valid YAML: {exc}") from None
    for document in documents:
        if document is None:
            continue
        items = document.get("tasks", [document]) if isinstance(document, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise errors.InvalidTask("file", f"{file}: expected a task mapping or tasks: [...]")
        yield from items


def _resolve_code_file(file: Path, data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    code_file = data.pop("code_file", None)
    if code_file is not None:
        source = file.parent / str(code_file)
        if not source.is_file():
            raise errors.InvalidTask("code_file", f"{file}: {source} not found")
        data["code"] = source.read_text()
    return data
