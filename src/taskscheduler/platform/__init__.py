"""The local platform supervisor: PostgreSQL, the Prefect server, its workers, our services.

``python -m taskscheduler.platform up|down|status`` (and ``make up``/``make down``) bring the
whole platform up on one machine and down again; all state lives in PostgreSQL, so a later
``up`` finds every deployment, work pool and block again. `LocalPlatform` (``local``) composes
one collaborator per part:

- ``processes``: PID files, detached starts, readiness waits, stopping process trees;
  ``catalogue``: the supervised services and how each is recognised;
- ``postgres``: the cluster, the database and its roles; ``keys``: the platform's secrets;
- ``environment``: what each child sees; ``addresses``: URLs and ports;
- ``prefect_server``, ``workers``, ``docker_lane``, ``gate``, ``api``, ``watchdog``: the parts;
- ``cli``: the command line.

Only ``taskscheduler._prefect`` speaks to Prefect; this package runs its commands and calls
``_prefect.admin``, and imports our REST API, gateway and watchdog only as child processes.
"""

from __future__ import annotations

from taskscheduler.platform.addresses import free_port
from taskscheduler.platform.catalogue import (
    API,
    DOCKER_WORKER,
    FAST_WORKER,
    GATE,
    SANDBOX_WORKER,
    SERVER,
    SERVICES,
    WATCHDOG,
    WORKER,
)
from taskscheduler.platform.cli import main
from taskscheduler.platform.local import LocalPlatform, PlatformStatus
from taskscheduler.platform.postgres import drop_database
from taskscheduler.platform.prefect_server import DEFAULT_POOL, DEFAULT_POOL_TYPE
from taskscheduler.platform.processes import ServiceFailed
from taskscheduler.platform.processes import cmdline as _cmdline
from taskscheduler.platform.processes import descendants as _descendants
from taskscheduler.platform.workers import FAST_POOL, SANDBOX_POOL

__all__ = [
    "API",
    "DEFAULT_POOL",
    "DEFAULT_POOL_TYPE",
    "DOCKER_WORKER",
    "FAST_POOL",
    "FAST_WORKER",
    "GATE",
    "SANDBOX_POOL",
    "SANDBOX_WORKER",
    "SERVER",
    "SERVICES",
    "WATCHDOG",
    "WORKER",
    "LocalPlatform",
    "PlatformStatus",
    "ServiceFailed",
    "_cmdline",
    "_descendants",
    "drop_database",
    "free_port",
    "main",
]
