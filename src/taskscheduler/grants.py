"""Grants: the work pools and Secret blocks a caller's tasks may use.

A token's scope says which calls it may make; its grants say what those calls may put within
reach of code. Without them a ``write`` token is worth an admin one: it could put its code in
the ``process`` or ``fast`` pool, which run it on the host, or name any Secret block and print
its value. So the SDK, which the REST API, the web page and the CLI all pass through, checks
the caller's grants:

- creating or changing a task: the pool it ends up in (the default pool when it names none)
  and every Secret block it names after the change (added or kept; removed ones do not count);
- changing a task, running it now, scheduling a job of it, moving one of its jobs: the pool
  the task is in now.

``None`` means unrestricted: admin tokens, and code trusted in-process (the CLI, scripts on
the SDK), which reaches Prefect and the database directly anyway. Any other token carries
explicit lists; a new one gets ``DEFAULT_POOLS`` and no secrets until an admin grants more.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from taskscheduler import errors

# The pools for untrusted code: a fresh sandbox per job, held to its limits (sandbox.limits.POOL,
# where a token's tasks that name no pool go), and one hardened container per job
# (_prefect.docker_pool.POOL).
DEFAULT_POOLS: frozenset[str] = frozenset({"sandbox", "docker"})
MAX_GRANTS = 50

__all__ = ["DEFAULT_POOLS", "MAX_GRANTS", "UNRESTRICTED", "Grants"]


class Grants(BaseModel):
    """The work pools and Secret blocks a caller may use; ``None`` is every one."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    pools: frozenset[str] | None = Field(
        default=None, description="Work pools its tasks may run in; None: every pool."
    )
    secrets: frozenset[str] | None = Field(
        default=None, description="Secret blocks its tasks may name; None: every block."
    )

    @property
    def unrestricted(self) -> bool:
        """Whether nothing is checked (admin tokens, trusted in-process callers)."""
        return self.pools is None and self.secrets is None

    def allows_pool(self, pool: str | None) -> bool:
        """Whether tasks of this caller may run in ``pool`` (None: a deployment with no pool,
        which only an unrestricted caller may touch)."""
        return self.pools is None or (pool is not None and pool in self.pools)

    def default_pool(self, platform_default: str, token_default: str) -> str:
        """Where this caller's task goes when it names no pool: ``token_default`` (the lane
        for other people's code) for a caller with grants that may use it, else the
        platform's default (what tokens granted other pools before it existed got)."""
        if self.unrestricted or not self.allows_pool(token_default):
            return platform_default
        return token_default

    def choosable(self, existing: Iterable[str]) -> list[str]:
        """The pools of ``existing`` this caller may choose for a task, sorted."""
        return sorted(p for p in set(existing) if self.allows_pool(p))

    def check_new_pool(self, pool: str | None, default_pool: str) -> None:
        """A task being created or changed will run in ``pool``, or the default pool when it
        names none: refuse unless this caller may use that pool."""
        chosen = pool or default_pool
        if self.allows_pool(chosen):
            return
        which = f"work pool {chosen!r}"
        if pool is None:
            which += " (the default pool, as the task names none)"
        raise errors.PermissionDenied(f"this token may not use {which}; {self._choose()}")

    def check_task_pool(self, task: str, pool: str | None) -> None:
        """An existing task is about to be changed or to get a job: refuse unless this caller
        may use the pool it is in now."""
        if self.allows_pool(pool):
            return
        where = f"work pool {pool!r}" if pool else "no work pool"
        raise errors.PermissionDenied(
            f"task {task!r} runs in {where}, which this token may not use"
        )

    def check_secrets(self, blocks: Iterable[str]) -> None:
        """Refuse unless this caller may use every Secret block of ``blocks``."""
        if self.secrets is None:
            return
        refused = sorted(set(blocks) - self.secrets)
        if refused:
            names = ", ".join(repr(b) for b in refused)
            several = len(refused) > 1
            raise errors.PermissionDenied(
                f"this token may not use Secret block{'s' if several else ''} {names}; an admin "
                f"can grant {'them' if several else 'it'} (tasks token grant --secret)"
            )

    def _choose(self) -> str:
        if not self.pools:
            return "it may use no work pool; an admin can grant one (tasks token grant --pool)"
        return "choose pool " + " or ".join(repr(p) for p in sorted(self.pools))


UNRESTRICTED = Grants()
