"""Where the client finds the API and its token: arguments, else ``TASKS_URL`` and
``TASKS_TOKEN``, else the file ``tasks login`` writes (``$XDG_CONFIG_HOME/taskscheduler/
client.json``, by default under ``~/.config``), mode 0600 since it holds a bearer token.

The file's token goes only to the file's URL: with another URL from an argument or the
environment, the file's token is not sent (a token is never handed to a server it was not
saved for).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

from taskscheduler import errors

ENV_URL = "TASKS_URL"
ENV_TOKEN = "TASKS_TOKEN"  # noqa: S105 - the variable's name, not a token
FILE_MODE = 0o600


@dataclasses.dataclass(frozen=True)
class Config:
    """The API's base URL (without ``/v1``) and the bearer token, if any."""

    url: str
    token: str | None = None


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$XDG_CONFIG_HOME/taskscheduler/client.json`` (``~/.config``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "taskscheduler" / "client.json"


def read(path: Path | None = None) -> Config | None:
    """The saved config, or None when there is no file."""
    path = path or default_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise errors.TaskSchedulerError(f"cannot read {path}: {exc}") from exc
    url, token = (data.get("url"), data.get("token")) if isinstance(data, dict) else (None, None)
    if not isinstance(url, str) or not url:
        raise errors.TaskSchedulerError(f"{path} names no url; run `tasks login` again")
    return Config(url=url, token=token if isinstance(token, str) and token else None)


def resolve(
    url: str | None = None,
    token: str | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """The URL and token to use: each from the arguments, else the environment, else the file
    (whose token only goes with its own URL)."""
    env = os.environ if environ is None else environ
    given_url, given_token = url or env.get(ENV_URL), token or env.get(ENV_TOKEN)
    # The file is read only when something is still missing (a broken one cannot stop a
    # caller who gave both).
    saved = None if given_url and given_token else read(path or default_path(env))
    chosen_url = given_url or (saved.url if saved else None)
    if not chosen_url:
        raise errors.TaskSchedulerError(
            f"no API URL: pass url=, set {ENV_URL}, or run `tasks login --url URL --token TOKEN`"
        )
    chosen_url = normalise(chosen_url)
    chosen_token = given_token or None
    if chosen_token is None and saved is not None and normalise(saved.url) == chosen_url:
        chosen_token = saved.token
    return Config(url=chosen_url, token=chosen_token)


def normalise(url: str) -> str:
    """The base URL without a trailing slash or ``/v1`` (the client adds the paths)."""
    url = url.strip().rstrip("/")
    return url.removesuffix("/v1") if url.endswith("/v1") else url


def save(config: Config, path: Path | None = None) -> Path:
    """Write the config file, mode 0600 from its creation on (its folder 0700 if new)."""
    path = path or default_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps({"url": config.url, "token": config.token}, indent=2) + "\n"
    partial = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # whatever the umask
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(partial, path)
    return path


def remove(path: Path | None = None) -> bool:
    """Delete the config file; whether there was one."""
    try:
        (path or default_path()).unlink()
    except FileNotFoundError:
        return False
    return True
