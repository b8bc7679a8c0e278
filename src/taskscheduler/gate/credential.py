"""Per-run job credentials: what a job holds instead of the platform's secrets.

A credential names one flow run and when it stops being valid, signed with the gate key
(HMAC-SHA256), so the job gateway can check it without a table and a job cannot forge one for
another run. Workers mint a credential as they start a job; the job presents it as its Prefect
"auth string" (``PREFECT_API_AUTH_STRING=job:<credential>``), which Prefect's client sends as
basic auth on HTTP and as the token of its websocket handshake.

    tsj1.<flow run id>.<expiry, epoch seconds>.<signature>

A stolen credential is worth one run's own calls, and only until it expires.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
import uuid

PREFIX = "tsj1"
# What a job sends as the user part of its basic-auth string.
USER = "job"
# How long a credential lives when the worker knows nothing better: a job's whole life,
# retries included, fits well inside a week; the gateway also refuses a run that has ended.
DEFAULT_LIFETIME = 7 * 24 * 3600.0


class InvalidCredential(ValueError):
    """The credential is malformed, forged or expired."""


@dataclasses.dataclass(frozen=True)
class JobCredential:
    """What a valid credential says: the run it is for, and until when."""

    run_id: uuid.UUID
    expires: float


def mint(key: bytes, run_id: uuid.UUID | str, *, lifetime: float = DEFAULT_LIFETIME) -> str:
    """A credential for one run, valid for ``lifetime`` seconds."""
    run = uuid.UUID(str(run_id))
    expires = int(time.time() + lifetime)
    payload = f"{PREFIX}.{run}.{expires}"
    return f"{payload}.{_sign(key, payload)}"


def verify(key: bytes, credential: str, *, now: float | None = None) -> JobCredential:
    """The run a credential is for; ``InvalidCredential`` unless genuine and unexpired."""
    parts = credential.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise InvalidCredential("not a job credential")
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _sign(key, payload)):
        raise InvalidCredential("bad signature")
    try:
        run_id, expires = uuid.UUID(parts[1]), float(parts[2])
    except ValueError:
        raise InvalidCredential("malformed") from None
    if expires < (time.time() if now is None else now):
        raise InvalidCredential("expired")
    return JobCredential(run_id=run_id, expires=expires)


def auth_string(credential: str) -> str:
    """The ``user:password`` form a job's Prefect client is given."""
    return f"{USER}:{credential}"


def from_auth_string(value: str) -> str:
    """The credential inside a job's auth string (basic-auth ``job:<credential>``)."""
    user, _, credential = value.partition(":")
    if user != USER or not credential:
        raise InvalidCredential("not a job's auth string")
    return credential


def from_basic_header(header: str) -> str:
    """The credential of an ``Authorization: Basic …`` header."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidCredential("not basic auth")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidCredential("malformed basic auth") from None
    return from_auth_string(decoded)


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
