"""What a signed-in key may see and do, from the scopes the services grant it."""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth import SCOPES

# The page each scope opens, in the order of the navigation.
PAGE_SCOPES = {
    "overview": "satisfaction:read",
    "needs": "analyses:read",
    "followups": "improvements:read",
    "improvements": "improvements:read",
    "issue": "issues:read",
}
MOVE_SCOPE = "improvements:write"
# Contacts get their own scope with masking (issue 10); until the services know it, whoever may
# read follow-ups already receives their contacts from the API, so the console shows them.
CONTACTS_SCOPE = "customers:read"
CONTACTS_FALLBACK_SCOPE = "improvements:read"


@dataclass(frozen=True)
class Grants:
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def may_open(self, page: str) -> bool:
        return self.may(PAGE_SCOPES[page])

    @property
    def pages(self) -> list[str]:
        return [page for page in PAGE_SCOPES if self.may_open(page)]

    @property
    def may_move(self) -> bool:
        return self.may(MOVE_SCOPE)

    @property
    def sees_contacts(self) -> bool:
        required = CONTACTS_SCOPE if CONTACTS_SCOPE in SCOPES else CONTACTS_FALLBACK_SCOPE
        return self.may(required)

    @property
    def home(self) -> str:
        """The first page this key may open ("/" when none: the overview says why)."""
        page = next(iter(self.pages), "overview")
        return "/" if page in ("overview", "issue") else f"/{page}"
