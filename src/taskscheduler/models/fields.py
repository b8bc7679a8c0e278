"""The field types and bounds every model shares: durations, memory sizes, UTC times, limits."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from taskscheduler import durations, errors

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


def check_time(value: dt.datetime, field: str) -> None:
    """Refuse a time outside the sane range (a typo such as year 20250, or year 1)."""
    try:
        inside = EARLIEST <= value <= LATEST
    except (TypeError, OverflowError):
        inside = False
    if not inside:
        raise errors.InvalidSchedule(field, f"must be between {EARLIEST.year} and {LATEST.year}")
