"""Input types whose values the database can always hold (a failed insert is a 500, not a 4xx)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime

# How far ahead of this host's clock another's may run.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# A lone UTF-16 surrogate ("\ud800" in JSON) decodes to a str that no UTF-8 encoder takes.
_SURROGATE = re.compile("[\ud800-\udfff]")


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters, and no encoder takes a lone surrogate."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if _SURROGATE.search(value):
        raise ValueError("must not contain lone UTF-16 surrogates")
    return value


def storable_json(value: Any, *, max_depth: int = 64) -> Any:
    """JSON that PostgreSQL's jsonb accepts: finite numbers, no NUL in strings or keys, no
    lone surrogates, and nested at most ``max_depth`` levels (deeper JSON exhausts the
    recursion of whoever decodes it later)."""
    _check_json(value, max_depth, 0)
    return value


def _check_json(value: Any, max_depth: int, depth: int) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, str):
        no_nul(value)
        return
    if not isinstance(value, dict | list):
        return
    if depth >= max_depth:
        raise ValueError(f"must not be nested more than {max_depth} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            no_nul(key)
            _check_json(item, max_depth, depth + 1)
    else:
        for item in value:
            _check_json(item, max_depth, depth + 1)


def _in_range(value: datetime) -> datetime:
    if not 1900 <= value.year <= 9999:
        raise ValueError("must be between the years 1900 and 9999")
    return value


def not_in_future(value: datetime, *, now: datetime | None = None) -> datetime:
    """A time that a clock slightly ahead of ours could give, not later."""
    if value > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        raise ValueError(f"must not be later than now + {int(MAX_CLOCK_SKEW.total_seconds())} s")
    return value


NoNul = AfterValidator(no_nul)
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
# When something happened: an event cannot be stamped in the future (it would pin a verdict or
# a theme's window there for good).
PastTimestamp = Annotated[Timestamp, AfterValidator(not_in_future)]
