"""``python -m taskscheduler.cli``: the ``tasks`` command."""

from taskscheduler.cli.main import main

if __name__ == "__main__":
    main()
