"""The shape of the house: one wing speaks to Prefect, and rooms stay small enough to live in."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "taskscheduler"
# The Prefect wing, and the code that runs inside a job (it runs Prefect's engine).
MAY_IMPORT_PREFECT = ("_prefect", "runtime")
# The platform supervisor is a package of small collaborators, none of them a second monolith.


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def room(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_only_the_prefect_wing_and_the_job_runtime_import_prefect() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in imported(path) if m == "prefect" or m.startswith(("prefect.", "prefect_"))
        )
        for path in modules()
        if room(path) not in MAY_IMPORT_PREFECT
    }
    assert {k: v for k, v in offenders.items() if v} == {}


MAX_LINES = 400


def test_no_module_is_over_the_size_limit() -> None:
    """One concept a module: past MAX_LINES a module holds more than one; split it."""
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in modules()
    }
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_sdk_reaches_prefect_only_through_the_gateway_and_its_mapping() -> None:
    reached = {
        str(path.relative_to(PACKAGE)): sorted(
            m
            for m in imported(path)
            if m.startswith("taskscheduler._prefect.")
            and m.split(".")[2] not in ("gateway", "mapping")
        )
        for path in modules()
        if room(path) == "sdk"
    }
    assert {k: v for k, v in reached.items() if v} == {}


def test_the_api_does_not_import_the_web_page() -> None:
    """``ui`` builds on ``api``, never the reverse; ``taskscheduler.web`` puts them together."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m
            for m in imported(path)
            if m == "taskscheduler.ui" or m.startswith("taskscheduler.ui.")
        )
        for path in modules()
        if room(path) == "api"
    }
    assert {k: v for k, v in offenders.items() if v} == {}
