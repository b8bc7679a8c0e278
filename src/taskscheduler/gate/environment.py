"""What a job's environment may hold: Prefect's client settings, never the platform's secrets.

Prefect's workers hand their own settings to every job they start (the auth string, the
database URL of a server in the same environment, ...). Whatever starts a job builds its
environment here instead: the job's own variables survive, the platform's credentials and
addresses never do, and a value that merely *contains* one of the platform's secrets is
dropped too, whatever its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from taskscheduler.gate import credential

# Where the gateway's socket is, inside a job (a directory bind-mounted read-only).
DOOR_MOUNT = "/run/door"
DOOR_SOCKET = "gate.sock"
# The variable naming the socket the job's relay connects to.
DOOR_VARIABLE = "TASKS_DOOR"
# Variables a worker sets for the launcher, which turns them into the job's own.
CREDENTIAL_VARIABLE = "TASKS_JOB_CREDENTIAL"

# Prefect's settings a job never gets: the server's (database, encryption key, auth), the API's
# address and credentials (the relay sets the job's own), the services' brokers, and the
# worker's control channel (unreachable from a sandbox).
_DENIED_PREFIXES = (
    "PREFECT_SERVER_",
    "PREFECT_API_",
    "PREFECT_REDIS_",
    "PREFECT_MESSAGING_",
    "PREFECT_INTEGRATIONS_",
    "PREFECT__CONTROL_",
    "PREFECT_UI_",
    "PREFECT_WORKER_",
)
# Of our own settings a job needs only where the project is (entrypoint tasks run from it)
# and the operator's misfire grace (it judges its own lateness; without it, the default).
_ALLOWED_TASKS = frozenset({"TASKS_PROJECT_DIR", "TASKS_MISFIRE_GRACE", DOOR_VARIABLE})
# The interpreter's own basics; nothing else of the worker's environment passes.
_ALLOWED_PLAIN = frozenset({"LANG", "LC_ALL", "TZ", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})


def for_job(
    inherited: Mapping[str, str | None],
    *,
    secrets: Iterable[str],
    job_credential: str | None,
    door: str | None,
) -> dict[str, str]:
    """A job's environment from what its worker would have given it.

    ``secrets`` are the platform's secret values (auth string, database URLs and passwords,
    tokens, keys): any variable whose value contains one is dropped. ``job_credential``
    becomes the job's Prefect auth string; ``door`` the gateway socket its relay uses.
    """
    hidden = [s for s in secrets if s and len(s) >= 8]
    env: dict[str, str] = {}
    for name, value in inherited.items():
        if value is None or not _allowed(name):
            continue
        if any(secret in value for secret in hidden):
            continue
        env[name] = value
    if job_credential is not None:
        env["PREFECT_API_AUTH_STRING"] = credential.auth_string(job_credential)
    if door is not None:
        env[DOOR_VARIABLE] = door
    return env


def _allowed(name: str) -> bool:
    if name.startswith("PREFECT_"):
        return not name.startswith(_DENIED_PREFIXES)
    if name.startswith("TASKS_"):
        return name in _ALLOWED_TASKS
    return name in _ALLOWED_PLAIN
