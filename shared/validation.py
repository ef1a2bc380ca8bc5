"""Input types whose values the database can always hold (a failed insert is a 500, not a 4xx)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def storable_json(value: Any) -> Any:
    """JSON that PostgreSQL's jsonb accepts: finite numbers, no NUL in strings or keys."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, str):
        no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(key)
            storable_json(item)
    elif isinstance(value, list):
        for item in value:
            storable_json(item)
    return value


def _in_range(value: datetime) -> datetime:
    if not 1900 <= value.year <= 9999:
        raise ValueError("must be between the years 1900 and 9999")
    return value


NoNul = AfterValidator(no_nul)
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
