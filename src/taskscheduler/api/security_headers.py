"""Security headers on every answer: what a browser may do with our page and our JSON.

On the web page (``/ui``), a Content-Security-Policy the page satisfies as it is: every script
and style sheet is a file of this package (CodeMirror 5 is vendored) and the templates hold no
inline script, style or event handler, so nothing needs 'unsafe-inline', and an injected
``<script>`` or ``onerror=`` would not run. ``img-src`` allows ``data:`` for the one image
CodeMirror makes itself (the blank drag image); ``connect-src 'self'`` covers the page's calls
to ``/v1`` and its live fragments. No page may be framed (``frame-ancestors 'none'``, and
``X-Frame-Options`` for browsers without CSP 2), nor hand its address to another site.

Everywhere: ``nosniff``, so a JSON answer is never taken for HTML or a script, and the same
referrer policy. FastAPI's ``/docs`` keep no CSP: they load Swagger UI from its CDN.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
EVERYWHERE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PAGE = {
    **EVERYWHERE,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Add ``PAGE`` headers to answers under ``/ui``, ``EVERYWHERE`` ones to all others."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        wanted = PAGE if path == "/ui" or path.startswith("/ui/") else EVERYWHERE

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
