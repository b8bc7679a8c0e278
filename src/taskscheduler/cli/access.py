"""``tasks token ...`` and ``tasks audit``: tokens and the audit log, straight from the database.

These commands act as the local user (``TASKS_ACTOR``, default ``$USER``) with the same rules
as the REST API: a token's secret is printed once, revocation is final, and every change is
recorded in the audit log. Whoever can reach the database can do this anyway; the CLI only
makes it safe and recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from taskscheduler import audit, durations, errors, store, tokens
from taskscheduler.settings import get_settings

T = TypeVar("T")

tokens_app = typer.Typer(
    help="Create, list, grant and revoke REST API tokens.", no_args_is_help=True
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


def _with_engine(work: Callable[..., Awaitable[T]]) -> T:
    """Run ``work(engine)`` on a fresh engine; connection failures become PlatformUnavailable."""

    async def run() -> T:
        settings = get_settings()
        engine = store.create_engine(settings, pooled=False)
        try:
            await store.require_current(engine)
            return await work(engine)
        except OSError as exc:
            raise errors.PlatformUnavailable(f"cannot reach the database: {exc}") from exc
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _actor() -> audit.Actor:
    return audit.Actor.local(get_settings(), source="cli")


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    scope: Annotated[tokens.Scope, typer.Option("--scope", help="read, write or admin.")],
    pool: PoolOption = None,
    secret: SecretOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it once: it is stored only as a hash.

    A non-admin token's tasks may use the docker pool and no Secret block unless --pool and
    --secret say otherwise; an admin token may use every one.
    """
    import re

    if not re.match(tokens.NAME_PATTERN, name):
        raise errors.InvalidTask("name", "use 1-100 letters, digits, spaces and . @ : - _")
    new = _with_engine(
        lambda engine: tokens.create(
            engine, name=name, scope=scope, pools=pool, secrets=secret, actor=_actor()
        )
    )
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
    found = _with_engine(tokens.list_tokens)
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
    info = _with_engine(
        lambda engine: tokens.grant(engine, token_id, pools=pools, secrets=secrets, actor=_actor())
    )
    if as_json:
        _print_json(info.model_dump(mode="json"))
    else:
        console.print(f"token {info.id} ({info.name}): {_grants(info.pools, info.secrets)}")


@tokens_app.command("revoke")
def revoke_token(token_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a token for good."""
    info = _with_engine(lambda engine: tokens.revoke(engine, token_id, actor=_actor()))
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
    entries = _with_engine(
        lambda engine: audit.query(
            engine, actor=actor, task=task, action=action, since=start, limit=limit
        )
    )
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


def _names(values: list[str] | None) -> str:
    if values is None:
        return "all"
    return ", ".join(values) or "none"


def _grants(pools: list[str] | None, secrets: list[str] | None) -> str:
    return f"pools: {_names(pools)}; secrets: {_names(secrets)}"


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"
