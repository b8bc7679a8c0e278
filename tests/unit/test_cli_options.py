"""``tasks create`` and ``tasks update`` offer every field of the task model, and what is given
reaches the task's definition. Against a stand-in for the SDK: no server."""

from __future__ import annotations

import importlib
import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from taskscheduler import models
from taskscheduler.cli import app, main, spec_options
from taskscheduler.cli import tasks as task_commands
from taskscheduler.cli.commands import COMMANDS

CODE = "def main(n=1):\n    return n\n\n\ndef run(n=1):\n    return n\n"

# One value a user could give for each field, and the option's name where it is not the field's.
SAMPLES: dict[str, tuple[str, str]] = {
    "cron": ("--cron", "0 9 * * 1-5"),
    "every": ("--every", "5m"),
    "at": ("--at", "+1h"),
    "rrule": ("--rrule", "FREQ=DAILY;BYHOUR=9"),
    "timezone": ("--tz", "Europe/Berlin"),
    "start": ("--start", "+1h"),
    "end": ("--end", "+2h"),
    "description": ("--description", "says hello"),
    "code": ("--code", CODE),
    "entrypoint": ("--entrypoint", "flows/hello.py:main"),
    "entry": ("--entry", "run"),
    "parameters": ("--param", "n=3"),
    "retries": ("--retries", "2"),
    "retry_delay": ("--retry-delay", "5s"),
    "retry_jitter": ("--retry-jitter", "0.5"),
    "timeout": ("--timeout", "1m"),
    "concurrency": ("--concurrency", "2"),
    "concurrency_policy": ("--concurrency-policy", "cancel-new"),
    "misfire": ("--misfire", "skip"),
    "late_limit": ("--late-limit", "5m"),
    "max_runtime": ("--max-runtime", "10m"),
    "notify": ("--notify", "ops-mail"),
    "tags": ("--tag", "nightly"),
    "pool": ("--pool", "docker"),
    "memory": ("--memory", "256m"),
    "cpus": ("--cpus", "0.5"),
    "secrets": ("--secret", "DB_PASSWORD=db-password"),
}
USER_FIELDS = sorted(set(models.TaskSpec.model_fields) - {spec_options.ARGUMENT})


class FakeScheduler:
    """Stands in for the SDK: builds the definition it is given, as the real one does first."""

    def __init__(self) -> None:
        self.spec: models.TaskSpec | None = None

    def __enter__(self) -> FakeScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _task(self, spec: models.TaskSpec) -> models.Task:
        self.spec = spec
        return models.Task(
            id="d1",
            deployment_id="d1",
            name=spec.name,
            flow="run-task",
            managed=True,
            spec=spec,
            schedule=spec.describe(),
            paused=False,
            pool=spec.pool,
            tags=spec.tags,
        )

    def create(self, data: dict[str, Any]) -> models.Task:
        return self._task(models.build_spec(data))

    def update(self, name: str, changes: dict[str, Any]) -> models.Task:
        current = models.build_spec({"name": name, "code": CODE})
        return self._task(current.merged(changes))


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeScheduler]:
    fake = FakeScheduler()
    monkeypatch.setattr(task_commands, "client", lambda: fake)
    yield fake


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def options_of(command: str) -> dict[str, list[str]]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    found = group.get_command(typer.Context(group), command)
    return {p.name: p.opts for p in found.params if isinstance(p, TyperOption) and p.name}


def test_every_field_has_a_sample() -> None:
    assert sorted(SAMPLES) == USER_FIELDS, "a new TaskSpec field: give it a sample value here"


@pytest.mark.parametrize("command", ["create", "update"])
@pytest.mark.parametrize("field", USER_FIELDS)
def test_the_command_offers_every_field_a_user_sets(command: str, field: str) -> None:
    flag, _value = SAMPLES[field]
    assert options_of(command).get(field) == [flag]


@pytest.mark.parametrize("field", USER_FIELDS)
def test_each_option_reaches_the_definition(sdk: FakeScheduler, field: str) -> None:
    flag, value = SAMPLES[field]
    code = [] if field in ("code", "entrypoint") else ["--code", CODE]
    invoke("create", "hello", *code, flag, value)
    assert sdk.spec is not None
    default = models.TaskSpec.model_fields[field].get_default(call_default_factory=True)
    assert getattr(sdk.spec, field) != default


def test_the_name_is_the_argument_and_code_file_reads_code(
    sdk: FakeScheduler, tmp_path: Path
) -> None:
    source = tmp_path / "job.py"
    source.write_text(CODE)
    invoke("create", "hello", "--code-file", str(source))
    assert sdk.spec is not None and sdk.spec.name == "hello" and sdk.spec.code == CODE


def test_retry_jitter_and_concurrency_policy_reach_the_spec(sdk: FakeScheduler) -> None:
    result = invoke(
        "create",
        "hello",
        "--code",
        CODE,
        "--retry-jitter",
        "0.5",
        "--concurrency",
        "1",
        "--concurrency-policy",
        "cancel-new",
        "--json",
    )
    assert sdk.spec is not None
    assert sdk.spec.retry_jitter == 0.5
    assert sdk.spec.concurrency_policy is models.ConcurrencyPolicy.CANCEL_NEW
    shown = json.loads(result.stdout)["spec"]
    assert shown["retry_jitter"] == 0.5 and shown["concurrency_policy"] == "cancel-new"

    invoke("update", "hello", "--retry-jitter", "0", "--concurrency-policy", "enqueue")
    assert sdk.spec.retry_jitter == 0.0
    assert sdk.spec.concurrency_policy is models.ConcurrencyPolicy.ENQUEUE


def test_update_changes_only_what_is_given(sdk: FakeScheduler) -> None:
    invoke("update", "hello", "--retries", "3")
    assert sdk.spec is not None and sdk.spec.retries == 3
    assert sdk.spec.retry_jitter == 0.2 and sdk.spec.code == CODE


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["tasks", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency-policy", "later"], "concurrency_policy: Input should be"),
        (["--retry-jitter", "1.5"], "retry_jitter: Input should be less than or equal to 1"),
        (["--param", "n"], "--param 'n': use KEY=JSON"),
        (["--secret", "DB_PASSWORD"], "--secret 'DB_PASSWORD': use NAME=block-name"),
        (["--tz", "Nowhere/City"], "timezone: unknown time zone"),
        (["--code-file", "/nonexistent/job.py"], "give --code or --code-file, not both"),
    ],
)
def test_wrong_values_are_one_line_errors(
    sdk: FakeScheduler,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    line = _main(monkeypatch, capsys, "create", "hello", "--code", CODE, *args)
    assert message in line
    assert sdk.spec is None, "nothing reached the SDK"


def test_update_without_options_is_refused(
    sdk: FakeScheduler, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "nothing to change" in _main(monkeypatch, capsys, "update", "hello")


def test_a_field_without_a_command_line_form_stops_the_import() -> None:
    from pydantic.fields import FieldInfo

    with pytest.raises(TypeError, match=r"TaskSpec\.odd: no command-line form"):
        spec_options._option("odd", FieldInfo.from_annotation(dict[int, int]))


def test_the_console_script_names_the_entry_point() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    target = tomllib.loads(pyproject.read_text())["project"]["scripts"]["tasks"]
    module, _, function = target.partition(":")
    assert getattr(importlib.import_module(module), function) is main


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_command_loads_and_its_help_is_its_docstrings_first_line(name: str) -> None:
    """``tasks --help`` shows the list's help without loading the commands: it must be what the
    command itself says."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.get_command(typer.Context(group), name)
    assert command is not None and command.name == name
    target = COMMANDS[name].load()
    doc = target.info.help if isinstance(target, typer.Typer) else target.__doc__
    assert doc.strip().splitlines()[0] == COMMANDS[name].help


def test_help_lists_the_commands_and_a_command_runs_after_it() -> None:
    listed = invoke("--help").output
    assert all(name in listed for name in COMMANDS)
    assert "--tz" in invoke("create", "--help").output
