"""The domain model: what a task is, what a job is, and the rules they obey.

No Prefect import here: the glue in ``_prefect.gateway`` maps these objects onto deployments and
flow runs. Every rule that can be checked without a server is checked when a ``TaskSpec`` is
built, so a bad definition is refused before anything is written.
"""

from __future__ import annotations

import ast
import datetime as dt
import enum
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from taskscheduler import durations, errors, schedules

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
MAX_CODE_BYTES = 256 * 1024
MAX_PARAMETERS_BYTES = 64 * 1024
MAX_PARAMETERS_DEPTH = 16
MAX_RETRIES = 20
MAX_SECRETS = 50
# Environment-variable names a secret may be delivered as; the platform's own are off limits.
SECRET_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]{0,63}$"  # noqa: S105 - a pattern, not a secret
SECRET_BLOCK_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # noqa: S105 - a pattern
POOL_PATTERN = r"^[A-Za-z0-9][\w-]{0,62}$"
RESERVED_ENV_PREFIXES = ("PREFECT_", "TASKS_", "PYTHON", "LD_")
RESERVED_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "SHELL", "PWD"})
# Sanity bounds of every time a task names: far outside them is a typo, not a plan.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
MAX_INT = 2**63 - 1
# Static outer bounds of a job's resource limits; the work pool's own bounds (the Docker pool's
# job template) are usually tighter and are enforced by the Prefect server.
MIN_MEMORY_MB = 16
MAX_MEMORY_MB = 1024 * 1024
MAX_CPUS = 1024.0
_MEMORY_UNITS = {
    "": 1,
    "m": 1,
    "mb": 1,
    "mi": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gi": 1024,
    "gib": 1024,
}
ENTRYPOINT_PATTERN = re.compile(r"^(?P<path>[\w./-]+\.py):(?P<func>[A-Za-z_]\w*)$")
# Validation context of a definition read back from storage: it was checked when written, and
# the rules for new input (a schedule must fire) must not make an existing task unreadable.
STORED: dict[str, bool] = {"stored": True}

Duration = Annotated[
    dt.timedelta,
    BeforeValidator(durations.parse_duration),
    PlainSerializer(lambda v: v.total_seconds(), return_type=float, when_used="json"),
]


def _memory_mb(value: Any) -> Any:
    """A memory size as whole MiB: ``512``, ``"512m"``, ``"1g"``, ``"1.5GiB"``."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        unit = match[2].lower() if match else ""
        if not match or unit not in _MEMORY_UNITS:
            raise ValueError("must be a size like 512m or 1g (MiB when no unit)")
        mib = float(match[1]) * _MEMORY_UNITS[unit]
        if mib != int(mib):
            raise ValueError("must be a whole number of MiB")
        return int(mib)
    return value


MemoryMB = Annotated[int, BeforeValidator(_memory_mb)]


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# Times leave the platform in ISO 8601 UTC, whatever zone they were given in.
UtcDateTime = Annotated[dt.datetime, PlainSerializer(_utc_text, return_type=str, when_used="json")]


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


class Schedule(BaseModel):
    """When a task runs: at most one of cron / every / at / rrule, in a zone, within a window.

    Naive times are wall-clock times in ``timezone``. A ``TaskSpec`` is a schedule plus the rest
    of the task; a schedule alone is what a preview of the next run times needs.
    """

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    every: Duration | None = None
    at: UtcDateTime | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    start: UtcDateTime | None = None
    end: UtcDateTime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("every")
    @classmethod
    def _every_at_least_a_second(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value < dt.timedelta(seconds=1):
            raise ValueError("interval must be at least 1 second")
        return value

    @model_validator(mode="after")
    def _schedule_consistent(self, info: ValidationInfo) -> Schedule:
        zone = ZoneInfo(self.timezone)
        for field in ("at", "start", "end"):
            value = getattr(self, field)
            if value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=zone)
                setattr(self, field, value)
            if value is not None:
                check_time(value, field)
        chosen = [k for k in ("cron", "every", "at", "rrule") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise errors.InvalidSchedule(chosen[1], f"give at most one schedule, not {chosen}")
        if self.start and self.end and self.end <= self.start:
            raise errors.InvalidTask("end", "must be after start")
        if self.at is not None:
            if self.start and self.at < self.start:
                raise errors.InvalidSchedule("at", "is before start")
            if self.end and self.at > self.end:
                raise errors.InvalidSchedule("at", "is after end")
        schedules.validate(self.schedule_kind, self.schedule_expression, self.timezone)
        if not (info.context or {}).get("stored"):
            schedules.check_fires(
                self.schedule_kind,
                self.schedule_expression,
                self.timezone,
                start=self.start,
                end=self.end,
            )
        return self

    @property
    def schedule_kind(self) -> schedules.Kind | None:
        """Which of cron / every / at / rrule the task uses, if any."""
        for kind in ("cron", "every", "at", "rrule"):
            if getattr(self, kind) is not None:
                return kind
        return None

    @property
    def schedule_expression(self) -> str | None:
        """The schedule as text: the cron or RRULE string, seconds, or an ISO time."""
        if self.cron is not None:
            return self.cron
        if self.rrule is not None:
            return self.rrule
        if self.every is not None:
            return durations.format_duration(self.every)
        if self.at is not None:
            return self.at.isoformat()
        return None

    def schedule_plan(self, now: dt.datetime) -> schedules.Plan | None:
        """What Prefect should be told, with the window folded in (see ``schedules``)."""
        kind = self.schedule_kind
        if kind is None:
            return None
        return schedules.plan(
            kind,
            self.schedule_expression or "",
            timezone=self.timezone,
            start=self.start,
            end=self.end,
            now=now,
        )

    def describe(self) -> str | None:
        """The schedule in one line, e.g. ``cron 0 9 * * 1-5 (Europe/Berlin) until ...``."""
        kind = self.schedule_kind
        if kind is None:
            return None
        text = f"{kind} {self.schedule_expression}"
        if kind != "every":
            text += f" ({self.timezone})"
        if self.start is not None:
            text += f" from {self.start.isoformat()}"
        if self.end is not None:
            text += f" until {self.end.isoformat()}"
        return text

    def next_times(self, count: int, now: dt.datetime) -> list[dt.datetime]:
        """The next ``count`` run times after ``now``, in UTC (a preview: Prefect decides)."""
        plan = self.schedule_plan(now)
        return schedules.preview(plan, count, after=now) if plan else []


class TaskSpec(Schedule):
    """A task as its author defines it: code, parameters, when it runs and how it behaves.

    Field names match the CLI options and the REST API's JSON fields.
    """

    model_config = ConfigDict(extra="forbid")

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


_M = TypeVar("_M", bound=Schedule)


def build_spec(data: dict[str, Any]) -> TaskSpec:
    """Build a ``TaskSpec``, turning pydantic's errors into one ``InvalidTask`` naming the field."""
    return _build(TaskSpec, data)


def build_schedule(data: dict[str, Any]) -> Schedule:
    """Build a bare ``Schedule`` (for previews), with the errors of ``build_spec``."""
    return _build(Schedule, data)


def _build(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "task"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "string_pattern_mismatch" and field == "name":
            message = "use 1-63 lowercase letters, digits and dashes, not starting with a dash"
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, errors.InvalidTask):
            raise cause from exc
        raise errors.InvalidTask(field, message) from exc


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


def check_time(value: dt.datetime, field: str) -> None:
    """Refuse a time outside the sane range (a typo such as year 20250, or year 1)."""
    try:
        inside = EARLIEST <= value <= LATEST
    except (TypeError, OverflowError):
        inside = False
    if not inside:
        raise errors.InvalidSchedule(field, f"must be between {EARLIEST.year} and {LATEST.year}")


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


class JobState(enum.StrEnum):
    """A job's state, summarised from Prefect's state types."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the job has ended and will not change again."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class StateChange(BaseModel):
    """One entry of a job's timeline."""

    state: JobState
    name: str = Field(description="Prefect's state name, e.g. Late, AwaitingRetry, Crashed.")
    timestamp: UtcDateTime
    message: str | None = None


class Job(BaseModel):
    """One execution of a task: a Prefect flow run (the job id is the flow run id)."""

    id: str
    name: str
    task: str | None = Field(description="Task name; None once the task was deleted.")
    state: JobState
    state_name: str = Field(description="Prefect's state name: Scheduled, Late, Crashed, ...")
    detail: str | None = Field(default=None, description="Prefect's state message.")
    scheduled_time: UtcDateTime | None = None
    start_time: UtcDateTime | None = None
    end_time: UtcDateTime | None = None
    start_delay: float | None = Field(default=None, description="Seconds late at start.")
    attempts: int = 0
    code_version: int | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    auto_scheduled: bool = False
    timeline: list[StateChange] = Field(default_factory=list)
    error: str | None = None


class CodeVersion(BaseModel):
    """One stored version of a task's code (a block document)."""

    version: int
    sha256: str
    created: UtcDateTime | None = None


class Task(BaseModel):
    """A task as the platform holds it: the spec plus what Prefect knows about it."""

    id: str = Field(description="The deployment id.")
    deployment_id: str
    name: str
    flow: str
    managed: bool = Field(description="Whether this platform created it (versus prefect deploy).")
    spec: TaskSpec | None = Field(description="The definition; None for foreign deployments.")
    schedule: str | None = Field(description="Human-readable schedule.")
    paused: bool
    pool: str | None
    tags: list[str]
    version: int | None = None
    code_sha256: str | None = None
    created: UtcDateTime | None = None
    updated: UtcDateTime | None = None
    next_runs: list[UtcDateTime] = Field(default_factory=list)
    last_job: Job | None = None
    versions: list[CodeVersion] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def state(self) -> Literal["active", "paused"]:
        """Whether the schedule is running."""
        return "paused" if self.paused else "active"
