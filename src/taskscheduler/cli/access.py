"""``tasks token ...`` and ``tasks audit``: tokens and the audit log, through the REST API.

Token commands need an ``admin`` token, the audit a ``read`` one, as the API's own routes do:
a token's secret is printed once, revocation is final, and every change is recorded in the
audit log under the token that made it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from taskscheduler import durations, errors
from taskscheduler.cli.output import client
from taskscheduler.models.tokens import NAME_PATTERN, Scope, TokenInfo

tokens_app = typer.Typer(
    help="Create, list, grant and revoke REST API tokens.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
PoolOption = Annotated[
    list[str] | None,
    typer.Option("--pool", help="A work pool its tasks may use (repeat for several)."),
]
SecretOption = Annotated[
    list[str] | None,
    typer.Option("--secret", help="A Secret block its tasks may name (repeat for several)."),
]


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    scope: Annotated[Scope, typer.Option("--scope", help="read, write or admin.")],
    pool: PoolOption = None,
    secret: SecretOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it once: it is stored only as a hash.

    A non-admin token's tasks may use the docker pool and no Secret block unless --pool and
    --secret say otherwise; an admin token may use every one.
    """
    import re

    if not re.match(NAME_PATTERN, name):
        raise errors.InvalidTask("name", "use 1-100 letters, digits, spaces and . @ : - _")
    with client() as api:
        new = api.create_token(name, scope, pools=pool, secrets=secret)
    if as_json:
        _print_json(new.model_dump(mode="json"))
        return
    console.print(
        f"token {new.id} ({new.name}, scope {new.scope.value}, {_grants(new.pools, new.secrets)}):"
    )
    sys.stdout.write(new.token + "\n")
    console.print("Store it now: it is not shown again.", style="dim")


@tokens_app.command("list")
def list_tokens(as_json: JsonFlag = False) -> None:
    """List tokens (never their secrets), revoked ones included."""
    with client() as api:
        found = api.tokens()
    if as_json:
        _print_json([t.model_dump(mode="json") for t in found])
        return
    table = Table(
        "id",
        "name",
        "scope",
        "pools",
        "secrets",
        "hint",
        "created",
        "last used",
        "revoked",
        box=None,
    )
    for t in found:
        table.add_row(
            t.id,
            t.name,
            t.scope.value,
            _names(t.pools),
            _names(t.secrets),
            t.hint + "…",
            _t(t.created_at),
            _t(t.last_used_at),
            _t(t.revoked_at),
        )
    console.print(table)


@tokens_app.command("grant")
def grant_token(
    token_id: str,
    pool: PoolOption = None,
    secret: SecretOption = None,
    no_pools: Annotated[
        bool, typer.Option("--no-pools", help="Take every work pool away.")
    ] = False,
    no_secrets: Annotated[
        bool, typer.Option("--no-secrets", help="Take every Secret block away.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set the work pools and/or Secret blocks a non-admin token's tasks may use.

    Each of --pool and --secret, when given, replaces that whole list; what is not given
    stays as it is. Takes effect at the token's next call.
    """
    if (pool and no_pools) or (secret and no_secrets):
        raise errors.InvalidTask("pool", "give a list or take it away, not both")
    pools = [] if no_pools else pool
    secrets = [] if no_secrets else secret
    with client() as api:
        info = api.grant_token(token_id, pools=pools, secrets=secrets)
    if as_json:
        _print_json(info.model_dump(mode="json"))
    else:
        console.print(f"token {info.id} ({info.name}): {_grants(info.pools, info.secrets)}")


@tokens_app.command("revoke")
def revoke_token(token_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a token for good."""
    with client() as api:
        api.revoke_token(token_id)
        info = _token(api.tokens(), token_id)
    if as_json:
        _print_json(info.model_dump(mode="json"))
    else:
        console.print(f"revoked {info.id} ({info.name})")


def audit_log(
    actor: Annotated[str | None, typer.Option(help="Actor name or token id.")] = None,
    task: Annotated[str | None, typer.Option(help="Only entries about this task.")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. task.create, job.cancel.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time or an offset like -1h.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Show the audit log, newest first: who did what, to which task or job, and the outcome."""
    start = None
    if since:
        try:
            start = durations.parse_when(since)
        except ValueError as exc:
            raise errors.InvalidTask("since", str(exc)) from None
    with client() as api:
        entries = api.audit(actor=actor, task=task, action=action, since=start, limit=limit)
    if as_json:
        _print_json([e.model_dump(mode="json") for e in entries])
        return
    table = Table("when", "actor", "action", "task", "job", "outcome", "request", box=None)
    for e in entries:
        who = f"{e.actor_name} ({e.actor_kind}, {e.source})"
        table.add_row(
            _t(e.at), who, e.action, e.task or "-", e.job or "-", e.outcome, e.request_id or "-"
        )
    console.print(table)


def _token(found: list[TokenInfo], token_id: str) -> TokenInfo:
    """The token ``token_id`` among ``found`` (the API answers a revocation with no body)."""
    for info in found:
        if info.id == token_id:
            return info
    raise errors.TokenNotFound(token_id)


def _names(values: list[str] | None) -> str:
    if values is None:
        return "all"
    return ", ".join(values) or "none"


def _grants(pools: list[str] | None, secrets: list[str] | None) -> str:
    return f"pools: {_names(pools)}; secrets: {_names(secrets)}"


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"
