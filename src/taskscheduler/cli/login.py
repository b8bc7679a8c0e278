"""``tasks login`` and ``tasks logout``: the REST client's saved URL and token.

``login`` checks the token with a read call before saving anything, then writes the client's
config file (``taskscheduler.client.config``, mode 0600); ``logout`` deletes it. The other
commands use that login unless ``TASKS_URL``/``TASKS_TOKEN`` say otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from taskscheduler import errors
from taskscheduler.client import config

if TYPE_CHECKING:
    from taskscheduler.client import Client


def login(
    url: Annotated[str, typer.Option("--url", help="The REST API, e.g. http://127.0.0.1:8000.")],
    token: Annotated[
        str,
        typer.Option(
            "--token", prompt=True, hide_input=True, help="An API token (asked for if not given)."
        ),
    ],
) -> None:
    """Check a token against the REST API and save it for the Python client (mode 0600)."""
    saved = config.Config(url=config.normalise(url), token=token.strip())
    if not saved.token:
        raise errors.InvalidTask("token", "must not be empty")
    try:
        with _client(saved.url, saved.token) as api:
            api.tasks_page(limit=1)
    except errors.NotAuthenticated as exc:
        raise errors.NotAuthenticated(f"{saved.url} refused the token: {exc}") from None
    path = config.save(saved)
    typer.echo(f"logged in to {saved.url}; saved to {path} (mode 0600)")


def _client(url: str, token: str | None) -> Client:
    from taskscheduler.client import Client  # not at import: `tasks --help` needs no httpx

    return Client(url, token)


def logout() -> None:
    """Forget the saved URL and token (delete the client's config file)."""
    path = config.default_path()
    if config.remove(path):
        typer.echo(f"logged out: removed {path}")
    else:
        typer.echo(f"not logged in ({path} does not exist)")
