"""A user error the CLI finds itself (a bad option): one line on stderr, exit status 1."""

from __future__ import annotations

from typing import NoReturn


class Failure(Exception):
    """A user error found by the CLI itself."""


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line ``error: message``, exit status 1."""
    raise Failure(message)
