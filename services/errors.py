"""The errors of the use cases: what went wrong, in words any caller (an HTTP answer, the CLI)
can show as they are. api/errors.py gives each its HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """A use case refused or could not finish; ``str(error)`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """The flow, journey or person named does not exist (in this workspace)."""


class Refused(ServiceError):
    """The request does not fit the current state: a flow's status, a journey that has ended, a
    re-entry rule."""


class Invalid(ServiceError):
    """The request's values do not fit: ``faults`` lists (path, message) pairs."""

    def __init__(self, message: str, faults: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.faults = faults


class TemporalUnavailable(ServiceError):
    """Temporal did not take a start, a signal or a schedule; the message says what changed
    (usually nothing) and that the same request may be sent again."""
