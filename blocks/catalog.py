"""The platform's custom Prefect block types, in one file Prefect's CLI can register.

    prefect block register -f blocks/catalog.py

`make up` registers the same types from the package (``taskscheduler._prefect.blocks``); this file
exists so an operator can do it with Prefect's own tools, e.g. against another server.
"""

from __future__ import annotations

from taskscheduler._prefect.blocks import TaskCode

__all__ = ["TaskCode"]
