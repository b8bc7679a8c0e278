"""Security headers by path, and the page's files against its Content-Security-Policy.

The browser tests (tests/integration/test_ui.py) load the pages under the policy; these read
the templates and scripts for what the policy forbids, so a change that needs a looser policy
fails here first, saying where.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from taskscheduler import ui
from taskscheduler.api import security_headers

UI = Path(ui.__file__).parent
TEMPLATES = sorted((UI / "templates").glob("*.html"))
SCRIPTS = sorted(UI.joinpath("static").rglob("*.js"))


def app() -> FastAPI:
    inner = FastAPI()

    @inner.get("/ui/tasks")
    async def page() -> PlainTextResponse:
        return PlainTextResponse("<p>page</p>", media_type="text/html")

    @inner.get("/v1/tasks")
    async def api() -> dict[str, str]:
        return {"ok": "yes"}

    @inner.get("/ui/framed")
    async def own() -> JSONResponse:
        return JSONResponse({}, headers={"X-Frame-Options": "SAMEORIGIN"})

    inner.add_middleware(security_headers.SecurityHeaders)
    return inner


async def get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_pages_get_the_policy_no_framing_nosniff_and_a_same_origin_referrer() -> None:
    headers = (await get("/ui/tasks")).headers
    assert headers["Content-Security-Policy"] == security_headers.CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


async def test_api_answers_get_nosniff_and_no_page_policy() -> None:
    headers = (await get("/v1/tasks")).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in headers


async def test_a_header_the_route_set_itself_is_kept() -> None:
    assert (await get("/ui/framed")).headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_hold_nothing_the_policy_forbids(template: Path) -> None:
    html = template.read_text()
    for script in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'\bsrc="/ui/static/', script), f"inline or foreign script: {script}"
    assert "<style" not in html, "inline style element"
    assert not re.search(r"\sstyle=", html), "inline style attribute"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert "javascript:" not in html
    # Links into the Prefect UI are templated ({{ prefect_ui }}): navigation, not loads.
    for url in re.findall(r'\s(?:src|href|action)="([^"{]*)', html):
        assert url == "" or (url.startswith(("/ui", "#")) and "//" not in url), url


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_need_no_eval_nor_inline_styles(script: Path) -> None:
    source = script.read_text()
    assert not re.search(r"\beval\(|new Function\(", source)
    assert 'setAttribute("style"' not in source and "setAttribute('style'" not in source
