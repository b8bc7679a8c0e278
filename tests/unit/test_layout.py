"""The shape of the house: one wing speaks to Prefect, and rooms stay small enough to live in."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "taskscheduler"
# The Prefect wing, and the code that runs inside a job (it runs Prefect's engine).
MAY_IMPORT_PREFECT = ("_prefect", "runtime")
# The platform supervisor is a package of small collaborators, none of them a second monolith.
PLATFORM_MODULE_MAX_LINES = 400


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


# Rooms split by concept, each module kept well under MAX_LINES: the SDK, the models and the
# gateway's part of the Prefect wing.
SPLIT_ROOMS = ("sdk", "models")
GATEWAY_MODULES = (
    "gateway",
    "session",
    "deployments",
    "versions",
    "flow_runs",
    "run_queries",
    "mapping",
    "records",
)
MAX_LINES = 400


def split_by_concept(path: Path) -> bool:
    parts = path.relative_to(PACKAGE).parts
    return room(path) in SPLIT_ROOMS or (
        len(parts) == 2 and parts[0] == "_prefect" and path.stem in GATEWAY_MODULES
    )


def test_the_sdk_models_and_gateway_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in modules()
        if split_by_concept(path)
    }
    assert len(sizes) >= 19, sorted(sizes)
    assert {name: lines for name, lines in sizes.items() if lines >= MAX_LINES} == {}


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


def test_no_platform_module_exceeds_its_size() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in sorted((PACKAGE / "platform").glob("*.py"))
    }
    assert sizes, "taskscheduler/platform/ is a package"
    assert {k: v for k, v in sizes.items() if v > PLATFORM_MODULE_MAX_LINES} == {}
