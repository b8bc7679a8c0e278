"""The CSRF check that takes the place of Prefect's (``_prefect/server/csrf.py``): the same
refusals, a database read only for a token it has not checked, and Prefect's app still
putting its own check where ours replaces it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from prefect.server.api.middleware import CsrfMiddleware
from prefect.server.api.server import create_app as prefect_create_app
from prefect.settings import (
    PREFECT_SERVER_CSRF_PROTECTION_ENABLED,
    PREFECT_UI_ENABLED,
    temporary_settings,
)

from taskscheduler._prefect.server import csrf

HOUR = dt.timedelta(hours=1)


class Database:
    """Stands for Prefect's csrf_token table: one token per client, and the reads made."""

    def __init__(self) -> None:
        self.tokens: dict[str, csrf.Stored] = {}
        self.reads: list[str] = []

    async def read(self, client: str) -> csrf.Stored | None:
        self.reads.append(client)
        stored = self.tokens.get(client)
        return stored if stored and stored[1] > dt.datetime.now(dt.UTC) else None


@pytest.fixture
def database() -> Database:
    return Database()


@pytest.fixture
async def api(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.api_route("/thing", methods=["GET", "POST", "DELETE"])
    def thing() -> dict[str, bool]:
        return {"done": True}

    app.add_middleware(csrf.CsrfCheck, read=database.read)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def post(
    api: httpx.AsyncClient, token: str | None, client: str | None = "c1"
) -> httpx.Response:
    # As bytes: a header may carry any latin-1 character, which httpx refuses in a str.
    headers = {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": client}
    return await api.post(
        "/thing", headers={k: v.encode("latin-1") for k, v in headers.items() if v is not None}
    )


async def test_prefects_refusals_with_its_bodies(
    api: httpx.AsyncClient, database: Database
) -> None:
    database.tokens["c1"] = ("good", dt.datetime.now(dt.UTC) + HOUR)
    missing = await post(api, None)
    assert (missing.status_code, missing.json()) == (403, {"detail": "Missing CSRF token."})
    anonymous = await post(api, "good", client=None)
    assert anonymous.status_code == 403
    assert anonymous.json() == {"detail": "Missing client identifier."}
    wrong = await post(api, "bad")
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "Invalid CSRF token or client identifier."}
    assert wrong.headers["access-control-allow-origin"] == "*"
    assert (await post(api, "good", client="someone-else")).status_code == 403
    assert (await post(api, "gööd")).status_code == 403  # not a 500 from compare_digest
    assert (await api.delete("/thing")).status_code == 403
    assert (await api.get("/thing")).json() == {"done": True}  # reads need no token


async def test_a_checked_token_is_not_read_again_until_it_expires(
    api: httpx.AsyncClient, database: Database
) -> None:
    database.tokens["c1"] = ("good", dt.datetime.now(dt.UTC) + HOUR)
    for _ in range(5):
        assert (await post(api, "good")).json() == {"done": True}
    assert database.reads == ["c1"]
    # Expired: read again, and refused as the database no longer holds it.
    database.tokens["c1"] = ("good", dt.datetime.now(dt.UTC) - HOUR)
    with pytest.MonkeyPatch.context() as patch:
        later = dt.datetime.now(dt.UTC) + 2 * HOUR
        patch.setattr(csrf, "_now", lambda: later)
        assert (await post(api, "good")).status_code == 403
    assert database.reads == ["c1", "c1"]


async def test_a_renewed_token_is_read_and_accepted_and_a_wrong_one_always_read(
    api: httpx.AsyncClient, database: Database
) -> None:
    database.tokens["c1"] = ("first", dt.datetime.now(dt.UTC) + HOUR)
    assert (await post(api, "first")).status_code == 200
    # Renewed through another API process: this one remembers the first token.
    database.tokens["c1"] = ("second", dt.datetime.now(dt.UTC) + HOUR)
    assert (await post(api, "second")).status_code == 200
    assert (await post(api, "second")).status_code == 200
    assert database.reads == ["c1", "c1"]
    # A guess is never answered from memory: every one costs a read and is refused.
    assert [(await post(api, "guess")).status_code for _ in range(3)] == [403] * 3
    assert database.reads == ["c1"] * 5


async def test_a_client_whose_token_is_gone_is_forgotten(
    api: httpx.AsyncClient, database: Database
) -> None:
    database.tokens["c1"] = ("good", dt.datetime.now(dt.UTC) + HOUR)
    assert (await post(api, "good")).status_code == 200
    del database.tokens["c1"]
    assert (await post(api, "other")).status_code == 403  # read: none; the remembered one dropped
    database.tokens["c1"] = ("good", dt.datetime.now(dt.UTC) + HOUR)
    assert (await post(api, "good")).status_code == 200
    assert database.reads == ["c1", "c1", "c1"]


@pytest.fixture
def prefect_app() -> Iterator[FastAPI]:
    with temporary_settings(
        {PREFECT_SERVER_CSRF_PROTECTION_ENABLED: True, PREFECT_UI_ENABLED: False}
    ):
        yield prefect_create_app(ignore_cache=True)


def test_prefect_checks_csrf_in_a_middleware_of_its_top_app(prefect_app: FastAPI) -> None:
    """The premise ``take_over`` relies on; an upgrade that moves it fails here."""
    assert CsrfMiddleware in [m.cls for m in prefect_app.user_middleware]
    assert prefect_app.middleware_stack is None  # built at the first request, not yet


def test_take_over_replaces_prefects_check_once(prefect_app: FastAPI) -> None:
    before = [m.cls for m in prefect_app.user_middleware]
    csrf.take_over(prefect_app)
    csrf.take_over(prefect_app)
    after = [m.cls for m in prefect_app.user_middleware]
    assert after == [csrf.CsrfCheck if c is CsrfMiddleware else c for c in before]


def test_take_over_refuses_an_app_whose_check_it_cannot_find(prefect_app: FastAPI) -> None:
    prefect_app.user_middleware[:] = [
        m for m in prefect_app.user_middleware if m.cls is not CsrfMiddleware
    ]
    with pytest.raises(RuntimeError, match="CsrfMiddleware was not found"):
        csrf.take_over(prefect_app)
    with temporary_settings({PREFECT_SERVER_CSRF_PROTECTION_ENABLED: False}):
        csrf.take_over(prefect_app)  # nothing to replace, nothing expected
