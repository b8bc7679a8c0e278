"""The shape of the house: one wing speaks to Prefect, and rooms stay small enough to live in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


# The REST client runs where the server does not: it must load none of the server's libraries
# and none of its modules, at any depth of what it imports.
CLIENT_MAY_NOT_LOAD = ("prefect", "prefect_", "fastapi", "starlette", "sqlalchemy", "alembic")
SERVER_ROOMS = (
    "_prefect",
    "api",
    "audit",
    "cli",
    "dbroles",
    "fastlane",
    "gate",
    "platform",
    "runtime",
    "sandbox",
    "sdk",
    "services",
    "settings",
    "store",
    "tokens",
    "ui",
    "web",
)


def import_time(path: Path) -> set[str]:
    """What importing ``path`` imports: module-level statements (under ``if``/``try`` too), not
    function bodies (run later, if ever) nor ``if TYPE_CHECKING:`` blocks (never run)."""
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


def module_file(name: str) -> Path | None:
    """The file of one of our modules (a package's ``__init__``), None for other names."""
    if name != "taskscheduler" and not name.startswith("taskscheduler."):
        return None
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def loaded_by(start: list[Path]) -> dict[Path, set[str]]:
    """Each of our modules that importing ``start`` loads, with the names it imports: every
    depth, parent packages included (importing ``a.b`` runs ``a/__init__.py`` first)."""
    seen: dict[Path, set[str]] = {}
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        names = imported(path) if path in start else import_time(path)
        seen[path] = names
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


@pytest.mark.parametrize("side", ["client", "cli"])
def test_the_client_and_the_cli_load_neither_the_servers_libraries_nor_its_modules(
    side: str,
) -> None:
    """The `tasks` CLI speaks the REST API through the client, so it runs where a client-only
    install does, and answers quickly (no Prefect to import)."""
    start = sorted((PACKAGE / side).rglob("*.py"))
    assert start, f"taskscheduler/{side}/ is missing"
    reached = loaded_by(start)
    assert PACKAGE / "__init__.py" in reached  # the parent package runs first
    libraries = {
        str(path.relative_to(PACKAGE)): sorted(
            n for n in names if n.split(".")[0].startswith(CLIENT_MAY_NOT_LOAD)
        )
        for path, names in reached.items()
    }
    assert {k: v for k, v in libraries.items() if v} == {}
    server = sorted(
        str(path.relative_to(PACKAGE))
        for path in reached
        if room(path) in SERVER_ROOMS and room(path) != side
    )
    assert server == []


def test_the_transitive_check_sees_what_it_should() -> None:
    """The walk above finds the server's libraries when they are there (not vacuously empty)."""
    reached = loaded_by([PACKAGE / "api" / "auth.py"])
    names = set().union(*reached.values())
    assert any(n.startswith("sqlalchemy") for n in names)  # through audit and tokens.store
    assert PACKAGE / "models" / "tokens.py" in reached  # through tokens/model.py
    # A module-level import is followed; one under TYPE_CHECKING or in a function is not.
    assert "taskscheduler.sdk" in imported(PACKAGE / "__init__.py")
    assert "taskscheduler.sdk" not in import_time(PACKAGE / "__init__.py")


def test_tasks_help_lists_every_command_and_loads_none_of_them() -> None:
    """``tasks --help`` answers from the command list alone: no command module, no task model
    (pydantic), no rich, no HTTP client."""
    code = (
        "import sys\n"
        "sys.argv = ['tasks', '--help']\n"
        "from taskscheduler.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'rich', 'httpx'}),"
        " sorted(m for m in sys.modules if m.startswith('taskscheduler.cli.')), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "logout" in done.stdout and "add-jobs" in done.stdout, done.stdout
    loaded = (
        "[] ['taskscheduler.cli.commands', 'taskscheduler.cli.failure', 'taskscheduler.cli.main']"
    )
    assert done.stderr.strip() == loaded, done.stderr


@pytest.mark.parametrize(
    ("module", "unloaded"),
    [
        ("taskscheduler.client", ("prefect", "fastapi", "sqlalchemy", "starlette")),
        # The CLI's commands, each loaded when used, load the HTTP client then.
        ("taskscheduler.cli.main", ("prefect", "fastapi", "sqlalchemy", "starlette", "httpx")),
    ],
)
def test_importing_the_client_or_the_cli_loads_no_server_library(
    module: str, unloaded: tuple[str, ...]
) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        f" & {set(unloaded)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
