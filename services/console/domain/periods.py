"""The periods a manager compares: the last N days, and the N days before them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PERIOD_DAYS = (7, 14, 30, 90)
DEFAULT_DAYS = 7
AGE_DAYS = (1, 3, 7)


@dataclass(frozen=True)
class Period:
    days: int
    since: datetime
    until: datetime

    @classmethod
    def last(cls, days: int, now: datetime) -> Period:
        return cls(days, now - timedelta(days=days), now)

    @property
    def previous(self) -> Period:
        """The period of the same length that ends where this one starts."""
        return Period(self.days, self.since - (self.until - self.since), self.since)


def change(current: float | None, previous: float | None) -> float | None:
    """Current minus previous, when both exist (a new figure has no change to show)."""
    if current is None or previous is None:
        return None
    return current - previous


def direction(delta: float | None, *, higher_is_better: bool = True) -> str:
    """``up``/``down`` for the reader (colour and arrow), ``flat`` when unchanged or unknown."""
    if delta is None or round(delta, 1) == 0:
        return "flat"
    better = delta > 0 if higher_is_better else delta < 0
    return "better" if better else "worse"
