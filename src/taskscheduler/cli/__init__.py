"""The ``tasks`` command line: every SDK operation, human tables or ``--json``.

Errors print one line on stderr and exit 1 — never a traceback (set ``TASKS_DEBUG=1`` to see
one). ``--json`` prints exactly one JSON document on stdout.

``main`` builds the application from ``tasks`` and ``jobs`` (the commands), ``access`` (tokens
and the audit log), ``output`` (what they share) and ``spec_options`` (the options of create and
update, generated from the task model's fields).
"""

from taskscheduler.cli.main import app, main

__all__ = ["app", "main"]
