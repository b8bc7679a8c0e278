"""The options of ``tasks create`` and ``tasks update``, generated from ``TaskSpec``'s fields.

Every field of the task model but ``name`` (the commands' argument) is an option named like
the field (``retry_delay`` → ``--retry-delay``), as the REST API's bodies are
(``api.schemas``); a field added to the model appears here by itself. The command line's own
touches are listed below: a few options are named differently (a repeatable option is
singular, ``--tz``), ``--param`` and ``--secret`` take ``KEY=VALUE`` pairs, times may be
offsets like ``+2h`` in the task's zone, and ``--code-file`` reads ``code`` from a file. A
field whose type has no command-line form yet stops the import, so it cannot be forgotten.

The command line checks only what it parses itself; the rest is the task model's to check, so
the CLI, the API and the SDK refuse the same definitions with the same field names.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import json
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import BeforeValidator
from pydantic.fields import FieldInfo

from taskscheduler import errors, models
from taskscheduler.cli.failure import fail
from taskscheduler.cli.output import JsonFlag, when

ARGUMENT = "name"
"""The field given as the commands' argument rather than as an option."""

# Options named otherwise than ``--field-name``.
FLAGS = {"timezone": "--tz", "tags": "--tag", "parameters": "--param", "secrets": "--secret"}

# The command line's words where they say more than (or there is no) field description.
_HELP = {
    "code": "Inline Python source.",
    "entrypoint": "path/to/file.py:function in the project.",
    "entry": "Entry function of inline code (default main).",
    "cron": "Cron expression, e.g. '0 9 * * 1-5'.",
    "every": "Interval, e.g. 30s, 5m, 1h.",
    "at": "One-off time: ISO 8601, now, +30s.",
    "rrule": "RFC 5545 RRULE.",
    "timezone": "IANA time zone (default UTC).",
    "start": "No job before this time.",
    "end": "No job after this time.",
    "parameters": "KEY=JSON argument (repeatable).",
    "retries": "Retries after a failure.",
    "retry_delay": "First retry delay; doubles each time.",
    "retry_jitter": "Random extra retry delay, as a fraction of the delay (0 to 1, default 0.2).",
    "timeout": "Time limit of one attempt.",
    "concurrency": "At most this many jobs at once.",
    "concurrency_policy": "A job beyond the concurrency limit: enqueue (wait, default) or "
    "cancel-new.",
    "tags": "Tag (repeatable).",
    "pool": "Work pool (default: process).",
    "memory": "Memory limit of a job, e.g. 256m, 1g (docker pool).",
    "cpus": "CPU limit of a job, e.g. 0.5 (docker pool).",
    "description": "What the task does.",
    "secrets": "NAME=block-name: the Prefect Secret block's value as env var NAME (repeatable).",
    "misfire": "Missed schedule ticks: all (default), latest or skip.",
    "late_limit": "Skip a job starting more than this late.",
    "max_runtime": "SLA: notify when a job runs longer than this.",
    "notify": "Prefect notification block told when jobs go wrong.",
}

Convert = Callable[[Any, dt.tzinfo], Any]


def parameters_of(pairs: list[str] | None) -> dict[str, Any] | None:
    """``--param KEY=JSON`` pairs as a task's (or a run's) ``parameters``."""
    if not pairs:
        return None
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--param {pair!r}: use KEY=JSON, e.g. --param count=3 or --param who='\"Ada\"'")
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise errors.InvalidTask(f"parameters.{key}", f"not valid JSON ({exc.msg})") from None
    return result


def secrets_of(pairs: list[str] | None) -> dict[str, str] | None:
    """``--secret NAME=block-name`` pairs as the task's ``secrets`` mapping."""
    if not pairs:
        return None
    result: dict[str, str] = {}
    for pair in pairs:
        env, sep, block = pair.partition("=")
        if not sep or not env or not block:
            fail(f"--secret {pair!r}: use NAME=block-name, e.g. --secret DB_PASSWORD=db-password")
        result[env] = block
    return result


# Mapping fields: given as repeated KEY=VALUE options.
_PAIRS: dict[str, Callable[[list[str] | None], dict[str, Any] | None]] = {
    "parameters": parameters_of,
    "secrets": secrets_of,
}


@dataclass(frozen=True)
class SpecOption:
    """One ``TaskSpec`` field as a command-line option."""

    field: str
    flag: str
    cli_type: Any  # what the option parses: str, int, float or list[str]
    help: str
    convert: Convert  # the parsed value (and the task's zone) -> the field's input

    def parameter(self) -> inspect.Parameter:
        """The option as a parameter of a command's signature (typer reads those)."""
        return inspect.Parameter(
            self.field,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, self.flag, help=self.help),
            annotation=self.cli_type | None,
        )


def _as_given(value: Any, _zone: dt.tzinfo) -> Any:
    return value


def _time(value: str, zone: dt.tzinfo) -> dt.datetime:
    return when(value, zone)


def _unwrapped(info: FieldInfo) -> tuple[Any, list[Any]]:
    """The field's type without ``| None`` and ``Annotated``, and all its metadata."""
    annotation: Any = info.annotation
    metadata = list(info.metadata)
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            annotation = rest[0]
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata += extra
    return annotation, metadata


def _option(field: str, info: FieldInfo) -> SpecOption:
    annotation, metadata = _unwrapped(info)
    flag = FLAGS.get(field, "--" + field.replace("_", "-"))
    help_text = _HELP.get(field) or info.description or field.replace("_", " ").capitalize()
    cli_type: Any
    convert: Convert = _as_given
    if field in _PAIRS:
        parse = _PAIRS[field]
        cli_type, convert = list[str], lambda pairs, _zone: parse(pairs)
    elif annotation is dt.datetime:
        cli_type, convert = str, _time
    elif any(isinstance(m, BeforeValidator) for m in metadata):
        cli_type = str  # text the model reads itself: a duration (30s), a size (256m)
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        cli_type = str  # the model names the choices when a value is wrong
        choices = ", ".join(str(m.value) for m in annotation)
        if not all(str(m.value) in help_text for m in annotation):
            help_text += f" One of: {choices}."
    elif annotation in (str, int, float):
        cli_type = annotation
    elif annotation == list[str]:
        cli_type = list[str]
    else:
        raise TypeError(
            f"TaskSpec.{field}: no command-line form for {annotation!r}; "
            "give it one in taskscheduler.cli.spec_options"
        )
    return SpecOption(field, flag, cli_type, help_text, convert)


OPTIONS: dict[str, SpecOption] = {
    field: _option(field, info)
    for field, info in models.TaskSpec.model_fields.items()
    if field != ARGUMENT
}

_CODE_FILE = inspect.Parameter(
    "code_file",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(None, "--code-file", help="Read inline source from a file."),
    annotation=Path | None,
)


def signature(*extra: inspect.Parameter) -> inspect.Signature:
    """``NAME``, every field option (``--code-file`` after ``--code``), ``extra``, ``--json``."""
    params = [inspect.Parameter(ARGUMENT, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)]
    for option in OPTIONS.values():
        params.append(option.parameter())
        if option.field == "code":
            params.append(_CODE_FILE)
    json_flag = inspect.Parameter(
        "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonFlag
    )
    return inspect.Signature([*params, *extra, json_flag])


def with_spec_options(
    *extra: inspect.Parameter,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a ``(name, **options)`` command the signature of ``signature(*extra)``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signed: Any = command
        signed.__signature__ = signature(*extra)
        return command

    return decorate


def changes(options: Mapping[str, Any]) -> dict[str, Any]:
    """The task fields given on the command line (only those), as the task model's input."""
    code, code_file = options.get("code"), options.get("code_file")
    if code is not None and code_file is not None:
        fail("give --code or --code-file, not both")
    if code_file is not None:
        if not code_file.is_file():
            fail(f"--code-file: {code_file} not found")
        code = code_file.read_text()
    given = {**options, "code": code}
    tz = given.get("timezone")
    try:
        zone: dt.tzinfo = ZoneInfo(tz) if tz else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.InvalidTask("timezone", f"unknown time zone {tz!r}") from None
    result: dict[str, Any] = {}
    for field, option in OPTIONS.items():
        raw = given.get(field)
        if raw is None or raw == []:
            continue
        value = option.convert(raw, zone)
        if value is not None:
            result[field] = value
    return result
