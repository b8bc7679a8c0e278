"""``python -m taskscheduler.platform up|down|status``."""

from taskscheduler.platform.cli import main

raise SystemExit(main())
