"""Customer identity: contacts are normalised so the same person matches across channels."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from shared.errors import InvalidInput


@dataclass(frozen=True)
class Contacts:
    name: str | None
    email: str | None
    phone: str | None
    external_id: str | None


# Both are pure and cost tens of microseconds; the same customers write again and again.
@lru_cache(maxsize=65_536)
def normalize_email(raw: str) -> str:
    """Syntax-checked, Unicode-normalised and lower-cased (mailboxes match case-insensitively)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(str(exc), field="customer.email") from exc


@lru_cache(maxsize=65_536)
def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 (``+8613800138000``); numbers without a country code use ``default_region``."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"not a phone number: {exc}", field="customer.phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(
            f"not a valid phone number for region {default_region}", field="customer.phone"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_contacts(
    *,
    name: str | None,
    email: str | None,
    phone: str | None,
    external_id: str | None,
    default_region: str,
) -> Contacts:
    return Contacts(
        name=name.strip() or None if name else None,
        email=normalize_email(email) if email else None,
        phone=normalize_phone(phone, default_region) if phone else None,
        external_id=external_id,
    )
