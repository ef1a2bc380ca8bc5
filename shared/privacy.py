"""Customers' contacts shown only to keys with ``customers:read``; everyone else sees them masked
(``z***@example.com``, ``138****8000``, ``张*``), enough to tell customers apart on a screen."""

from __future__ import annotations

from collections.abc import Set
from typing import TypeVar

from shared.contracts import CustomerRef

CUSTOMERS_READ = "customers:read"
C = TypeVar("C", bound=CustomerRef)


def mask_email(email: str) -> str:
    local, at, domain = email.rpartition("@")
    if not at:
        return mask_text(email)
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """The last four digits and what comes before the middle four: the area and carrier."""
    if len(phone) < 8:
        return "*" * (len(phone) - 2) + phone[-2:]
    return f"{phone[:-8]}****{phone[-4:]}"


def mask_text(value: str) -> str:
    return value[:1] + "*" * min(max(len(value) - 1, 1), 3)


def masked(customer: C) -> C:
    return customer.model_copy(
        update={
            "name": mask_text(customer.name) if customer.name else customer.name,
            "email": mask_email(customer.email) if customer.email else customer.email,
            "phone": mask_phone(customer.phone) if customer.phone else customer.phone,
            "external_id": (
                mask_text(customer.external_id) if customer.external_id else customer.external_id
            ),
        }
    )


def shown_to(customer: C | None, scopes: Set[str]) -> C | None:
    """The customer as a caller with ``scopes`` may see it."""
    if customer is None or CUSTOMERS_READ in scopes:
        return customer
    return masked(customer)
