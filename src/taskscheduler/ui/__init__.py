"""The web page: server-rendered pages under ``/ui`` of the task API.

Pages are read through the SDK as the signed-in token. Every change goes from the page's script
through the ``/v1`` API with the session cookie, so the page and the API share one validation,
one set of status codes and one audit trail. Live parts of a page re-fetch their own fragment.
Everything the page needs is served from this package (no file is fetched from elsewhere).
"""

from taskscheduler.ui.pages import STATIC_DIR, install, router

__all__ = ["STATIC_DIR", "install", "router"]
