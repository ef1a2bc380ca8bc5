"""The domain's refusals, shared by every service.

Use cases raise these; ``shared.problems`` maps each to a problem detail in one place, and the
consumer dead-letters a ``PermanentFailure`` at once instead of retrying it.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the caller can act on; ``field`` names what is at fault, if one thing is."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """A value passed validation of its shape but is still unusable (422)."""

    status = 422
    title = "Invalid request"


class UnknownReference(InvalidInput):
    """The body names something that does not exist (422, unlike a missing URL target)."""


class NotFound(DomainError):
    """The resource named in the URL does not exist (404)."""

    status = 404
    title = "Not found"


class Conflict(DomainError):
    """The request contradicts what is stored: a key taken by another body, a move not
    allowed from the current state (409)."""

    status = 409
    title = "Conflict"


class BrokerUnavailable(DomainError):
    """The change needs the broker, which does not answer: nothing was stored (503)."""

    status = 503
    title = "Service unavailable"
    retry_after = 5


class PermanentFailure(Exception):
    """A message that can never succeed, however often it is retried: dead-letter it now."""
