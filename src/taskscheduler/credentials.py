"""The platform's own secrets, generated on the first ``make up`` and kept in the state dir.

Six secrets guard a local platform: the basic-auth string of the Prefect API, the Fernet key
that encrypts block data (Secret blocks included) in Prefect's database, the first admin
token of our REST API, the key that signs each job's credential for its own run, and the
passwords of the Prefect server's and the API's database roles (``dbroles``). An
explicit ``TASKS_*`` setting always wins; otherwise, in development, each is generated once
with ``secrets`` and written to ``<state_dir>/credentials.json`` with mode 0600, so they are
never hard-coded and survive restarts. Outside development nothing is generated: the
operator must set them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, SecretStr

from taskscheduler import errors
from taskscheduler.settings import Settings

FILE_NAME = "credentials.json"
FIELDS = (
    "prefect_auth_string",
    "encryption_key",
    "admin_token",
    "gate_key",
    "prefect_db_password",
    "api_db_password",
)


class Credentials(BaseModel):
    """The secrets every process of one platform shares."""

    prefect_auth_string: SecretStr
    encryption_key: SecretStr
    admin_token: SecretStr
    gate_key: SecretStr
    prefect_db_password: SecretStr
    api_db_password: SecretStr


def path(settings: Settings) -> Path:
    """Where the generated secrets live."""
    return settings.state_dir / FILE_NAME


def read_file(settings: Settings) -> dict[str, str]:
    """The generated secrets, or nothing when ``make up`` has not generated any yet."""
    try:
        data = json.loads(path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if k in FIELDS and isinstance(v, str)}


def prefect_auth_string(settings: Settings) -> str | None:
    """The Prefect basic-auth string: the setting, else the generated one (if any)."""
    if settings.prefect_auth_string is not None:
        return settings.prefect_auth_string.get_secret_value()
    return read_file(settings).get("prefect_auth_string")


def ensure(settings: Settings, *, existing_encryption_key: str | None = None) -> Credentials:
    """The platform's secrets: settings first, then the file, then generated and saved.

    ``existing_encryption_key`` is the key Prefect already generated and stored in its
    database for an older platform; adopting it keeps existing blocks readable.
    """
    stored = read_file(settings)
    values: dict[str, str] = {}
    generated = False
    for field in FIELDS:
        explicit: SecretStr | None = getattr(settings, field)
        if explicit is not None:
            values[field] = explicit.get_secret_value()
        elif field in stored:
            values[field] = stored[field]
        elif settings.environment != "development":
            raise errors.PlatformUnavailable(
                f"TASKS_{field.upper()} must be set outside development"
            )
        else:
            values[field] = _generate(field, existing_encryption_key)
            stored[field] = values[field]
            generated = True
    if generated:
        _write_private(path(settings), json.dumps(stored, indent=2) + "\n")
    return Credentials.model_validate(values)


def _generate(field: str, existing_encryption_key: str | None) -> str:
    if field == "prefect_auth_string":
        return f"taskscheduler:{secrets.token_urlsafe(32)}"
    if field == "encryption_key":
        # A Fernet key is 32 random bytes, URL-safe base64 encoded.
        return existing_encryption_key or base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if field in ("gate_key", "prefect_db_password", "api_db_password"):
        return secrets.token_urlsafe(32)
    return f"tsk_{secrets.token_urlsafe(32)}"


def _write_private(target: Path, content: str) -> None:
    """Write a file only its owner can read, replacing any previous one atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content)
    os.replace(temporary, target)
