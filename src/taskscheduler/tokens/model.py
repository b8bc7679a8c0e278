"""A token's secret and the hash stored of it; its scope and how it is shown live in
``models.tokens`` (the REST client reads them too) and are re-exported here."""

from __future__ import annotations

import hashlib
import secrets

from taskscheduler.models.tokens import NAME_PATTERN, NewToken, Scope, TokenInfo

__all__ = [
    "BOOTSTRAP_NAME",
    "NAME_PATTERN",
    "PREFIX",
    "NewToken",
    "Scope",
    "TokenInfo",
    "generate",
    "hash_token",
    "hint",
]

PREFIX = "tsk_"
BOOTSTRAP_NAME = "admin (TASKS_ADMIN_TOKEN)"


def generate() -> str:
    """A new random token."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token (see the module docstring for why SHA-256 is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


def hint(token: str) -> str:
    """The first characters of a token, shown to recognise it."""
    return token[: len(PREFIX) + 4]
