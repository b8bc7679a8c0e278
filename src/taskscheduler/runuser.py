"""The system user the process and fast lanes run as, apart from the platform's own.

Their workers start other people's code, so they run as an unprivileged system user of their
own (``TASKS_RUN_USER``, default ``taskscheduler``) that cannot read the platform's state
directory (its credentials, logs and PID files) — and every job they start runs in a sandbox
beneath that (``taskscheduler.sandbox``). Creating the user and switching to it needs root;
a platform started by another user runs these workers as that user and says so.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from taskscheduler import errors

DEFAULT_NAME = "taskscheduler"


@dataclasses.dataclass(frozen=True)
class RunUser:
    """An account the lanes' workers run as, and the home it may write."""

    name: str
    uid: int
    gid: int
    home: Path

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run as this user, with no capabilities and no way to gain privileges."""
        if self.uid == os.geteuid():
            return argv
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--no-new-privs",
            "--",
            *argv,
        ]


def ensure(name: str, home: Path) -> RunUser:
    """The run user, created as a system account if missing; ``home`` made its own (0700).

    Without root the lanes run as the current user: nothing can be switched to.
    """
    if os.geteuid() != 0:
        current = pwd.getpwuid(os.geteuid())
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return RunUser(current.pw_name, current.pw_uid, current.pw_gid, home)
    if not _exists(name):
        useradd = shutil.which("useradd")
        if useradd is None:
            raise errors.PlatformUnavailable(f"cannot create the system user {name!r}: no useradd")
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: created meanwhile by another start
            raise errors.PlatformUnavailable(
                f"cannot create the system user {name!r}: {result.stderr.strip()}"
            )
    account = pwd.getpwnam(name)
    if account.pw_uid == 0 or grp.getgrgid(account.pw_gid).gr_gid == 0:
        raise errors.PlatformUnavailable(f"the run user {name!r} must not be root")
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, account.pw_uid, account.pw_gid)
    home.chmod(0o700)
    return RunUser(name, account.pw_uid, account.pw_gid, home)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
