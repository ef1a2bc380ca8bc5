"""What can go wrong between the console and the services, beside shared/errors.py's refusals
(a service's 404, 409 and 422 come back as NotFound, Conflict and InvalidInput)."""

from __future__ import annotations

from shared.errors import DomainError


class Forbidden(DomainError):
    """The key lacks the scope a page or a move needs (403)."""

    status = 403
    title = "Forbidden"


class SignedOut(Exception):
    """The services no longer accept the session's key (revoked): sign in again."""


class Unavailable(Exception):
    """A service did not answer, or failed (a 5xx)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} is unavailable")
        self.service = service
