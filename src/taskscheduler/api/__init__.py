"""The REST API: FastAPI over the same SDK as the CLI, with bearer tokens and an audit trail.

``create_app()`` builds the application; ``python -m taskscheduler.api`` serves it with uvicorn
on ``TASKS_HOST:TASKS_API_PORT``.
"""

from __future__ import annotations

from taskscheduler.api.app import create_app, main

__all__ = ["create_app", "main"]
