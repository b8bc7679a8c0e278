"""Durations and times as people type them: ``30s``, ``5m``, ``1h30m``, ``now``, ``+30s``."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> Any:
    """Turn ``"90"``, ``90``, ``"1m30s"`` or ``"PT90S"``-free text into a timedelta.

    Anything else is returned unchanged so that pydantic reports the error on the field.
    """
    try:
        return _parse_duration(value)
    except (OverflowError, ValueError):
        # timedelta refuses more than ~2.7 million years, and NaN; say so on the field.
        raise ValueError("duration out of range") from None


def _parse_duration(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if not isinstance(value, str):
        return value
    text = value.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return dt.timedelta(seconds=float(text))
    if text and _PART.sub("", text) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
        return dt.timedelta(seconds=seconds)
    return value  # pydantic's own timedelta parsing (ISO 8601, "HH:MM:SS") gets a try


def format_duration(value: dt.timedelta) -> str:
    """The shortest ``1h30m``-style text for a timedelta, as ``parse_duration`` reads it."""
    seconds = value.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:.6f}".rstrip("0") + "s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_when(
    text: str, *, now: dt.datetime | None = None, zone: dt.tzinfo = dt.UTC
) -> dt.datetime:
    """A point in time: ``now``, ``+30s``/``+2h`` from now, or ISO 8601 (naive: in ``zone``).

    Raises ValueError with a message fit for a user.
    """
    now = now or dt.datetime.now(dt.UTC)
    text = text.strip()
    if text.lower() == "now":
        return now
    if text.startswith("+"):
        delta = parse_duration(text[1:])
        if not isinstance(delta, dt.timedelta):
            raise ValueError(f"cannot read {text!r} as an offset like +30s or +5m")
        return now + delta
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time: use ISO 8601, now or +30s") from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


def beside_utc(value: dt.datetime, zone: str) -> str:
    """An instant on the wall clock of ``zone`` with UTC beside it, as people who live in that
    zone read a task's times: ``2026-12-01 09:00:00 EST (14:00:00Z)``; UTC alone for UTC."""
    utc = value.astimezone(dt.UTC)
    if zone in ("UTC", "Etc/UTC"):
        return utc.strftime("%Y-%m-%d %H:%M:%SZ")
    local = value.astimezone(zoneinfo.ZoneInfo(zone))
    return f"{local.strftime('%Y-%m-%d %H:%M:%S %Z')} ({utc.strftime('%H:%M:%SZ')})"
