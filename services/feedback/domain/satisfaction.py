"""Satisfaction from explicit ratings and from the seed's "满意度为X" statement.

The seed counts only "满意" as satisfied; "中" is therefore not satisfied (neutral). Text that
states no satisfaction gives no verdict, never a guess. Issue 4 widens the text rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.contracts import Ces7, Csat5, Nps10, Rating, Thumbs, Verdict

Source = Literal["explicit", "implicit"]


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    score: float
    source: Source
    basis: str


def _band(value: int, satisfied_from: int, neutral_from: int) -> Verdict:
    if value >= satisfied_from:
        return "satisfied"
    if value >= neutral_from:
        return "neutral"
    return "dissatisfied"


def assess_rating(rating: Rating) -> Assessment:
    """csat5: 4-5 satisfied, 3 neutral, 1-2 dissatisfied. nps10: 9-10 promoter (satisfied),
    7-8 passive (neutral), 0-6 detractor (dissatisfied). ces7 (7 = very easy): 5-7 satisfied,
    4 neutral, 1-3 dissatisfied. thumbs: up satisfied, down dissatisfied."""
    basis = f"rating {rating.scale}={rating.value}"
    match rating:
        case Csat5(value=value):
            return Assessment(_band(value, 4, 3), (value - 1) / 4, "explicit", basis)
        case Nps10(value=value):
            return Assessment(_band(value, 9, 7), value / 10, "explicit", basis)
        case Ces7(value=value):
            return Assessment(_band(value, 5, 4), (value - 1) / 6, "explicit", basis)
        case Thumbs(value=value):
            up = value == "up"
            return Assessment(
                "satisfied" if up else "dissatisfied", 1.0 if up else 0.0, "explicit", basis
            )
    raise ValueError(f"unknown scale {rating.scale}")


_LEVELS: dict[str, tuple[Verdict, float]] = {
    "非常满意": ("satisfied", 1.0),
    "很满意": ("satisfied", 1.0),
    "满意": ("satisfied", 0.75),
    "高": ("satisfied", 0.75),
    "很高": ("satisfied", 1.0),
    "中": ("neutral", 0.5),
    "中等": ("neutral", 0.5),
    "一般": ("neutral", 0.5),
    "不满意": ("dissatisfied", 0.25),
    "低": ("dissatisfied", 0.25),
    "差": ("dissatisfied", 0.25),
    "很低": ("dissatisfied", 0.0),
    "很差": ("dissatisfied", 0.0),
    "非常不满意": ("dissatisfied", 0.0),
    "high": ("satisfied", 0.75),
    "good": ("satisfied", 0.75),
    "medium": ("neutral", 0.5),
    "average": ("neutral", 0.5),
    "low": ("dissatisfied", 0.25),
    "poor": ("dissatisfied", 0.25),
    "bad": ("dissatisfied", 0.25),
}


def _alternation(levels: list[str]) -> str:
    # Longest first, so that 非常满意 is not read as 满意 and 不满意 not as 满意.
    return "|".join(re.escape(level) for level in sorted(levels, key=len, reverse=True))


_STATEMENT_ZH = re.compile(
    r"满意度\s*(?:为|是|:|：)\s*(?P<level>"
    + _alternation([level for level in _LEVELS if not level.isascii()])
    + ")"
)
_STATEMENT_EN = re.compile(
    r"satisfaction(?:\s+level)?\s*(?:is|was|:|=)\s*(?P<level>"
    + _alternation([level for level in _LEVELS if level.isascii()])
    + r")\b",
    re.IGNORECASE,
)


def assess_text(text: str) -> Assessment | None:
    """The seed's "满意度为X" (and "satisfaction: X"); None when the text states no level."""
    for pattern in (_STATEMENT_ZH, _STATEMENT_EN):
        match = pattern.search(text)
        if match:
            level = _LEVELS.get(match.group("level").lower())
            if level:
                return Assessment(level[0], level[1], "implicit", f"text {match.group(0)!r}")
    return None


def supersedes(
    new: Assessment, new_at: datetime, current: Assessment | None, current_at: datetime | None
) -> bool:
    """An explicit rating beats text; between two of a kind, the later statement wins."""
    if current is None or current_at is None:
        return True
    if new.source != current.source:
        return new.source == "explicit"
    return new_at >= current_at and new != current
