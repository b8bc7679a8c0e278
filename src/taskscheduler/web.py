"""The web application: the REST API with the web page on it, as the platform serves them.

``api`` knows nothing of the page; ``ui`` builds on ``api`` (its authentication, schemas and
error answers). This module puts the two together. ``python -m taskscheduler.web`` serves the
whole on ``TASKS_HOST:TASKS_API_PORT`` (``make up`` and the compose file do);
``python -m taskscheduler.api`` serves the REST API alone.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from taskscheduler import ui
from taskscheduler.api import app as api_app
from taskscheduler.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The REST API of ``settings`` (default: the environment's) with the page under ``/ui``."""
    app = api_app.create_app(settings)
    # After the API's own handlers: our errors on /ui are answered with a page.
    ui.install(app)
    app.include_router(ui.router)
    app.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui.static")
    app.state.known_routes.extend(ui.router.routes)
    return app


def main() -> None:
    """Serve the API and the page with uvicorn on ``TASKS_HOST:TASKS_API_PORT``."""
    settings = get_settings()
    api_app.serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
