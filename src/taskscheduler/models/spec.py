"""A task as its author defines it (``TaskSpec``): code, arguments, policy, and their checks."""

from __future__ import annotations

import ast
import datetime as dt
import enum
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from taskscheduler import errors
from taskscheduler.models.fields import (
    ENTRYPOINT_PATTERN,
    MAX_CODE_BYTES,
    MAX_CPUS,
    MAX_INT,
    MAX_MEMORY_MB,
    MAX_PARAMETERS_BYTES,
    MAX_PARAMETERS_DEPTH,
    MAX_RETRIES,
    MAX_SECRETS,
    MIN_MEMORY_MB,
    NAME_PATTERN,
    POOL_PATTERN,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIXES,
    SECRET_BLOCK_PATTERN,
    SECRET_ENV_PATTERN,
    Duration,
    MemoryMB,
)
from taskscheduler.models.schedule import Schedule, build_model


class ConcurrencyPolicy(enum.StrEnum):
    """What happens to a job that would exceed the task's concurrency limit."""

    ENQUEUE = "enqueue"  # wait for a slot
    CANCEL_NEW = "cancel-new"  # give up on the new job


class MisfirePolicy(enum.StrEnum):
    """What happens to the ticks of a schedule whose jobs could not start in time.

    A tick is *missed* when a later tick of the same task was already due by the time its
    job started (the platform was down or too busy). ``all`` runs every missed tick (catch
    up, Prefect's own behaviour and the default: no work is dropped unless the task says it
    may be); ``latest`` runs only the newest due tick (coalesce); ``skip`` runs none of them
    and resumes with the next tick that starts within the misfire grace.
    """

    ALL = "all"
    LATEST = "latest"
    SKIP = "skip"


class TaskSpec(Schedule):
    """A task as its author defines it: code, parameters, when it runs and how it behaves.

    Field names match the CLI options and the REST API's JSON fields.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique slug naming the task.")
    description: str = Field(default="", max_length=2000)
    code: str | None = Field(default=None, description="Inline Python source.")
    entrypoint: str | None = Field(
        default=None, description="A function in the project: path/to/file.py:function."
    )
    entry: str = Field(
        default="main",
        pattern=r"^[A-Za-z_]\w*$",
        description="Entry function of inline code.",
    )
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict, description="Keyword arguments passed to the entry function."
    )
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    retry_delay: Duration = Field(
        default=dt.timedelta(seconds=10),
        description="Delay before the first retry; doubles on each further attempt.",
    )
    retry_jitter: float = Field(
        default=0.2, ge=0, le=1, description="Random extra delay, as a fraction of the delay."
    )
    timeout: Duration | None = Field(default=None, description="Limit of one attempt.")
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ENQUEUE
    misfire: MisfirePolicy = Field(
        default=MisfirePolicy.ALL,
        description="What happens to missed schedule ticks: all, latest or skip.",
    )
    late_limit: Duration | None = Field(
        default=None, description="Skip a job that would start more than this late."
    )
    max_runtime: Duration | None = Field(
        default=None, description="SLA: notify when a job has been running longer than this."
    )
    notify: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Prefect notification blocks told when a job fails, crashes, is late or "
        "exceeds max_runtime.",
    )
    tags: list[str] = Field(default_factory=list, max_length=50)
    pool: str | None = Field(default=None, pattern=POOL_PATTERN)
    memory: MemoryMB | None = Field(
        default=None,
        ge=MIN_MEMORY_MB,
        le=MAX_MEMORY_MB,
        description="Memory limit of one job in MiB (container pools; the pool sets the bounds).",
    )
    cpus: float | None = Field(
        default=None,
        gt=0,
        le=MAX_CPUS,
        description="CPU limit of one job, in CPUs (container pools; the pool sets the bounds).",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variable name → Prefect Secret block name; the values are "
        "read at run time and handed to the code as environment variables.",
    )

    @field_validator("notify")
    @classmethod
    def _notify_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(SECRET_BLOCK_PATTERN, name):
                raise errors.InvalidTask(
                    "notify", f"{name!r}: name a notification block: lowercase letters, digits, -"
                )
        return sorted(set(value))

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_SECRETS:
            raise ValueError(f"at most {MAX_SECRETS} secrets")
        for env, block in value.items():
            if not re.match(SECRET_ENV_PATTERN, env):
                raise errors.InvalidTask(
                    f"secrets.{env}", "use an environment variable name: A-Z, 0-9 and _"
                )
            if env in RESERVED_ENV_NAMES or env.startswith(RESERVED_ENV_PREFIXES):
                raise errors.InvalidTask(f"secrets.{env}", "is reserved for the platform")
            if not re.match(SECRET_BLOCK_PATTERN, block):
                raise errors.InvalidTask(
                    f"secrets.{env}", "name a Secret block: lowercase letters, digits and dashes"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Refuse what PostgreSQL or Prefect's JSON cannot store, before it reaches them."""
        if isinstance(data, dict):
            for key, value in data.items():
                problem = _unstorable(value)
                if problem:
                    path, message = problem
                    raise errors.InvalidTask(".".join([str(key), *path]), message)
        return data

    @field_validator("code")
    @classmethod
    def _code_size(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > MAX_CODE_BYTES:
            raise ValueError(f"code is larger than {MAX_CODE_BYTES // 1024} KiB")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_form(cls, value: str | None) -> str | None:
        if value is not None:
            match = ENTRYPOINT_PATTERN.match(value)
            if not match or match["path"].startswith("/") or ".." in match["path"].split("/"):
                raise ValueError("must look like path/to/file.py:function, inside the project")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters_size(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        encoded = json.dumps(value)
        if len(encoded.encode()) > MAX_PARAMETERS_BYTES:
            raise ValueError(f"parameters are larger than {MAX_PARAMETERS_BYTES // 1024} KiB")
        if _depth(value) > MAX_PARAMETERS_DEPTH:
            raise ValueError(f"parameters are nested deeper than {MAX_PARAMETERS_DEPTH}")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_form(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or len(tag) > 100 or tag.strip() != tag:
                raise ValueError(f"invalid tag {tag!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if (self.code is None) == (self.entrypoint is None):
            raise errors.InvalidTask("code", "give exactly one of code or entrypoint")
        if self.code is not None:
            check_source(self.code, self.entry, self.parameters)
        return self

    @property
    def code_sha256(self) -> str:
        """Content hash of the code: the inline source, or the entrypoint reference."""
        payload = self.code if self.code is not None else f"entrypoint:{self.entrypoint}"
        return hashlib.sha256(payload.encode()).hexdigest()

    def check_entrypoint(self, project_dir: Path) -> None:
        """Refuse an entrypoint whose file or function cannot be found in the project."""
        if self.entrypoint is None:
            return
        path, _, func = self.entrypoint.rpartition(":")
        file = project_dir / path
        if not file.is_file():
            raise errors.InvalidTask("entrypoint", f"file {path!r} not found in {project_dir}")
        check_source(file.read_text(), func, self.parameters, field="entrypoint")

    def merged(self, changes: dict[str, Any]) -> TaskSpec:
        """A new spec with ``changes`` applied; choosing one schedule kind clears the others."""
        data = self.model_dump(exclude_none=False)
        if any(k in changes for k in ("cron", "every", "at", "rrule")):
            for kind in ("cron", "every", "at", "rrule"):
                data[kind] = None
        if "code" in changes and changes["code"] is not None:
            data["entrypoint"] = None
        if "entrypoint" in changes and changes["entrypoint"] is not None:
            data["code"] = None
        data.update(changes)
        return build_spec(data)


def build_spec(data: dict[str, Any]) -> TaskSpec:
    """Build a ``TaskSpec``, turning pydantic's errors into one ``InvalidTask`` naming the field."""
    return build_model(TaskSpec, data)


def check_source(
    source: str, entry: str, parameters: dict[str, JsonValue], *, field: str = "code"
) -> None:
    """Refuse code that does not parse, lacks the entry function, or cannot take the parameters."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise errors.InvalidTask(field, f"syntax error on line {exc.lineno}: {exc.msg}") from None
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    function = functions.get(entry)
    if function is None:
        raise errors.InvalidTask(field, f"no top-level function {entry!r}")
    args = function.args
    # Parameters are passed by name, so positional-only ones can never receive a value.
    for name in sorted(set(parameters) & {a.arg for a in args.posonlyargs}):
        raise errors.InvalidTask(f"parameters.{name}", f"{entry}() takes {name!r} by position only")
    if args.kwarg is not None:
        return
    accepted = {a.arg for a in args.args + args.kwonlyargs}
    unknown = sorted(set(parameters) - accepted)
    if unknown:
        raise errors.InvalidTask(
            f"parameters.{unknown[0]}", f"{entry}() takes no parameter {unknown[0]!r}"
        )
    with_defaults = len(args.defaults)
    positional = args.posonlyargs + args.args
    required = {a.arg for a in positional[: len(positional) - with_defaults]}
    required |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None}
    missing = sorted(required - set(parameters))
    if missing:
        raise errors.InvalidTask(
            f"parameters.{missing[0]}", f"{entry}() needs parameter {missing[0]!r}"
        )


def _unstorable(value: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str] | None:
    """Where a value holds text or numbers PostgreSQL's JSON or Prefect's encoder refuse."""
    if isinstance(value, str):
        if "\x00" in value:
            return path, "must not contain NUL characters"
        try:
            value.encode()
        except UnicodeEncodeError:
            return path, "must be valid Unicode text"
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        if abs(value) > MAX_INT:
            return path, "integers must fit in 64 bits"
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return path, "numbers must be finite"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable(key, (*path, str(key))) or _unstorable(item, (*path, str(key)))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable(item, (*path, str(index)))
            if found:
                return found
    return None


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0
