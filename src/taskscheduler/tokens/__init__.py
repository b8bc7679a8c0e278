"""API tokens: random bearer secrets with a scope, shown once, stored only as a hash.

A token is ``tsk_`` + 32 random bytes (``secrets.token_urlsafe``). Only its SHA-256 is stored.
A slow password hash (bcrypt, argon2) exists to make guessing *low-entropy* secrets expensive;
a 256-bit random token cannot be guessed however fast the hash, so a plain SHA-256 loses
nothing, costs microseconds per request, and lets the database find a token by its hash
through a unique index instead of comparing secrets in Python.

Scopes are ordered, ``read`` < ``write`` < ``admin``: each includes the ones below it.
Scope says which calls a token may make; its grants (``taskscheduler.grants``) say which work
pools and Secret blocks its tasks may use: every one for an admin token, else the lists stored
with it (new tokens: ``grants.DEFAULT_POOLS`` and no secret, until an admin grants more).
A revoked token is kept (for the audit trail) but never authenticates again.
"""

from taskscheduler.tokens.model import (
    BOOTSTRAP_NAME,
    NAME_PATTERN,
    PREFIX,
    NewToken,
    Scope,
    TokenInfo,
    generate,
    hash_token,
)
from taskscheduler.tokens.store import (
    authenticate,
    create,
    ensure_bootstrap,
    grant,
    list_tokens,
    revoke,
)

__all__ = [
    "BOOTSTRAP_NAME",
    "NAME_PATTERN",
    "PREFIX",
    "NewToken",
    "Scope",
    "TokenInfo",
    "authenticate",
    "create",
    "ensure_bootstrap",
    "generate",
    "grant",
    "hash_token",
    "list_tokens",
    "revoke",
]
