"""The supervised services: their names, how long each may take to come up, how to know it.

A PID file alone proves nothing once its process has exited and the PID has been reused, so
each service is also recognised by its command line before it is ever signalled.
"""

from __future__ import annotations

SERVER = "prefect-server"
WORKER = "prefect-worker"
# The Docker pool's worker (the pool and its job template: taskscheduler._prefect.docker_pool).
DOCKER_WORKER = "docker-worker"
# The fast lane (taskscheduler.fastlane): warm processes, jobs held to their exact instant.
FAST_WORKER = "fast-worker"
# The sandbox lane: the fast worker serving one fresh, limited sandbox per job (--single-use).
SANDBOX_WORKER = "sandbox-worker"
SINGLE_USE_FLAG = "--single-use"
# With TASKS_API_WORKERS > 1 the API runs in several processes and Prefect's services in one of
# their own (taskscheduler.tuning).
SERVICES = "prefect-services"
# Our REST API (taskscheduler.api), served by uvicorn on TASKS_HOST:TASKS_API_PORT.
API = "taskscheduler-api"
# The job gateway (taskscheduler.gate): the one door from a job to the platform.
GATE = "taskscheduler-gate"
# The watchdog (taskscheduler.services.watchdog): crash detection and retries, SLA events,
# canary.
WATCHDOG = "taskscheduler-watchdog"

# Every supervised service, in the order their processes are listed.
ALL = (SERVER, WORKER, DOCKER_WORKER, FAST_WORKER, SANDBOX_WORKER, API, WATCHDOG, SERVICES, GATE)

# Prefect's server with the fast lane's set-based endpoints in its API (what platforms started
# before it ran `prefect server start`: still recognised as ours on `down`).
SERVER_MODULE = "taskscheduler._prefect.server"
SERVICES_MODULE = "taskscheduler._prefect.services"
FAST_MODULE = "taskscheduler.fastlane"
# The REST API and the web page (taskscheduler.web composes the two).
API_MODULE = "taskscheduler.web"
# What platforms started before the page moved out of the API package ran: still ours on `down`.
FORMER_API_MODULE = "taskscheduler.api"
GATE_MODULE = "taskscheduler.gate"
WATCHDOG_MODULE = "taskscheduler.services.watchdog"
# The process and docker lanes' workers: Prefect's, starting every job through the gateway.
WORKERS_MODULE = "taskscheduler._prefect.workers"

# How long a service may take to come up. Read at call time, so a caller on a loaded machine
# (the benchmark) may raise them. A first start on an empty database runs all of Prefect's
# migrations; on two cores that alone takes tens of seconds, so the server gets a generous bound.
SERVER_TIMEOUT = 180.0
WORKER_TIMEOUT = 60.0
API_TIMEOUT = 180.0
GATE_TIMEOUT = 60.0

# The services started as ``python -m MODULE``, recognised by that module in their command line.
_MODULES = {
    SERVER: SERVER_MODULE,
    SERVICES: SERVICES_MODULE,
    FAST_WORKER: FAST_MODULE,
    SANDBOX_WORKER: FAST_MODULE,
    API: API_MODULE,
    WATCHDOG: WATCHDOG_MODULE,
    GATE: GATE_MODULE,
    WORKER: WORKERS_MODULE,
    DOCKER_WORKER: WORKERS_MODULE,
}


def recognises(service: str, cmdline: list[str]) -> bool:
    """Whether ``cmdline`` is that of ``service`` (one of ours, not a stranger with its PID)."""
    module = _MODULES.get(service)
    prefect = "prefect" in " ".join(cmdline)
    if module == FAST_MODULE:  # two lanes, one module: told apart by the sandbox lane's flag
        return module in cmdline and (SINGLE_USE_FLAG in cmdline) == (service == SANDBOX_WORKER)
    if module is not None and module in cmdline:
        return True
    if service == API:
        return FORMER_API_MODULE in cmdline
    if service == SERVER:
        return prefect and "server" in cmdline and "start" in cmdline and "services" not in cmdline
    if service == SERVICES:  # what platforms started before it ran (prefect server services start)
        return "services" in cmdline and "server" in cmdline
    return prefect and "worker" in cmdline
