"""Keeping secret values out of what a job reports: its log records and its error message.

One rule for both lanes (``execution`` in a flow run, ``warm`` in the fast lane's processes):
while a job's secrets are set, every log record of the process has their values replaced by
``***``, and an exception whose message carries one is replaced by a ``RuntimeError`` with
the values redacted (the job's final state shows that message). Best effort: a value the code
transforms (base64, say) is not recognised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

REDACTED = "***"

Redact = Callable[[str], str]


def unchanged(text: str) -> str:
    """The redaction of a job without secrets."""
    return text


def redactor(values: Iterable[str]) -> Redact:
    """A function replacing each of ``values`` (longest first, empty ones ignored) in a text."""
    hidden = sorted((v for v in values if v), key=len, reverse=True)
    if not hidden:
        return unchanged

    def redact(text: str) -> str:
        for value in hidden:
            text = text.replace(value, REDACTED)
        return text

    return redact


@contextmanager
def redacted_log_records(redact: Redact) -> Iterator[None]:
    """Redact the message and traceback of every log record created within the block."""
    if redact is unchanged:
        yield
        return
    factory = logging.getLogRecordFactory()

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's business, not ours
            return record
        if redact(message) != message:
            record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            trace = logging.Formatter().formatException(record.exc_info)
            if redact(trace) != trace:
                record.exc_text = redact(trace)
        return record

    logging.setLogRecordFactory(redacting)
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


@contextmanager
def redacted_errors(redact: Redact) -> Iterator[None]:
    """Re-raise an exception whose message carries a secret as a redacted ``RuntimeError``
    (without its chain, which would carry it too); others pass unchanged."""
    try:
        yield
    except Exception as exc:
        if redact(str(exc)) != str(exc):
            raise RuntimeError(redact(f"{type(exc).__name__}: {exc}")) from None
        raise
