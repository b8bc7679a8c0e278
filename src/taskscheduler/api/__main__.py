"""``python -m taskscheduler.api``: serve the REST API."""

from __future__ import annotations

from taskscheduler.api.app import main

if __name__ == "__main__":
    main()
