"""``python -m taskscheduler.platform up|down|status`` (``make up``/``make down``/``make status``).

Errors come out as one line and an exit code, never a traceback: a service that did not come
up says which and where its log is.
"""

from __future__ import annotations

import argparse
import sys

from taskscheduler import credentials, errors
from taskscheduler.client import config
from taskscheduler.platform.local import LocalPlatform
from taskscheduler.platform.processes import ServiceFailed
from taskscheduler.settings import get_settings


def _print_where(platform: LocalPlatform) -> None:
    print(f"Prefect UI:  {platform.ui_url}")
    print(f"Prefect API: export PREFECT_API_URL={platform.api_url}")
    print(f"Web page:    {platform.service_api_url}/ui (sign in with a token, e.g. the admin one)")
    print(f"REST API:    {platform.service_api_url}/docs")
    print(f"Secrets:     {credentials.path(platform.settings)} (Prefect auth string, admin token)")
    print(f"Logs:        {platform.log_dir}")


def _write_login(platform: LocalPlatform) -> None:
    """Save the local admin login for ``tasks`` (the client's config file, mode 0600), so a
    newcomer's first commands work; a login to another platform is left as it is."""
    url = platform.service_api_url
    path = config.default_path()
    try:
        saved = config.read(path)
    except errors.TaskSchedulerError:
        saved = None  # unreadable: replaced by a good one
    if saved is not None and config.normalise(saved.url) != config.normalise(url):
        print(f"Login:       kept {path} (for {saved.url}); `tasks login --url {url}` for this one")
        return
    token = platform.credentials.admin_token.get_secret_value()
    config.save(config.Config(url=config.normalise(url), token=token), path)
    print(f"Login:       {path} (the admin token, for `tasks`)")


def main(argv: list[str] | None = None) -> int:
    """``python -m taskscheduler.platform up|down|status``."""
    parser = argparse.ArgumentParser(
        prog="python -m taskscheduler.platform",
        description="Start, stop or inspect the local task-scheduling platform.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        platform = LocalPlatform(get_settings())
        if args.command == "up":
            platform.up()
            print("The platform is up.")
            if platform.docker_problem:
                print(f"warning: no docker pool: {platform.docker_problem}", file=sys.stderr)
            _print_where(platform)
            _write_login(platform)
        elif args.command == "down":
            platform.down()
            print("The platform is down; its data stays in PostgreSQL.")
        else:
            status = platform.status()
            server = "healthy" if status.server_healthy else "not answering"
            print(f"server: pid {status.server_pid or '-'}, {server}")
            print(f"worker: pid {status.worker_pid or '-'}, ", end="")
            print("alive" if status.worker_alive else "not running")
            print(f"docker worker: pid {status.docker_worker_pid or '-'}, ", end="")
            print("alive" if status.docker_worker_alive else "not running")
            _print_where(platform)
            if not status.up:
                print("error: the platform is not (fully) running", file=sys.stderr)
                return 1
    except ServiceFailed as exc:
        print(f"error: {exc.summary}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the command line shows one line, no traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0
