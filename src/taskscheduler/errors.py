"""The errors users can meet, as one small hierarchy.

    TaskSchedulerError
    ├── InvalidTask (ValueError)        a field fails validation; names the field
    │   └── InvalidSchedule             a schedule that cannot be used
    ├── TaskNotFound (LookupError)
    ├── TaskAlreadyExists
    ├── JobNotFound (LookupError)
    ├── JobAlreadyStarted               reschedule of a job that is no longer waiting
    ├── JobAlreadyFinished              cancel of a job in a final state
    ├── TokenNotFound (LookupError)     no API token has that id
    ├── PermissionDenied                the caller's grants do not cover a work pool or secret
    ├── NotAuthenticated                the REST API refused the token (none, unknown, revoked)
    ├── ApiError                        the REST API answered a status none of these explain
    └── PlatformUnavailable (ConnectionError)   the Prefect server or database cannot be reached
        └── ApiUnreachable              the REST client cannot reach the API at its URL

The CLI prints ``str(error)`` on one line and exits 1; the API maps each leaf to a status code
and the REST client maps it back (``taskscheduler.wire.errors``, one table for both).
"""

from __future__ import annotations


class TaskSchedulerError(Exception):
    """Something went wrong in the task scheduler."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InvalidTask(TaskSchedulerError, ValueError):
    """The task definition is invalid."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class InvalidSchedule(InvalidTask):
    """The schedule is invalid."""


class TaskNotFound(TaskSchedulerError, LookupError):
    """No task has that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"task {name!r} not found")


class TaskAlreadyExists(TaskSchedulerError):
    """A task with that name already exists."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"task {name!r} already exists")


class JobNotFound(TaskSchedulerError, LookupError):
    """No job has that id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} not found")


class JobAlreadyStarted(TaskSchedulerError):
    """The job has already started, so it can no longer be moved."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"job {job_id} has already started (state: {state})")


class JobAlreadyFinished(TaskSchedulerError):
    """The job has already finished, so it can no longer be cancelled."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"job {job_id} has already finished (state: {state})")


class TokenNotFound(TaskSchedulerError, LookupError):
    """No API token has that id."""

    def __init__(self, token_id: str) -> None:
        self.token_id = token_id
        super().__init__(f"token {token_id} not found")


# Not also a PermissionError: that is an OSError, which the glue reads as "cannot reach".
class PermissionDenied(TaskSchedulerError):
    """The caller's token may not use that work pool or Secret block."""


class PlatformUnavailable(TaskSchedulerError, ConnectionError):
    """The Prefect server or the database cannot be reached."""


class NotAuthenticated(TaskSchedulerError):
    """The REST API did not accept the token: none was sent, or it is unknown or revoked."""


class ApiError(TaskSchedulerError):
    """The REST API answered with a status that none of our errors explain."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{message} (HTTP {status})")


class ApiUnreachable(PlatformUnavailable):
    """The REST client cannot reach the API."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot reach the task scheduler API at {url}: {reason}")
