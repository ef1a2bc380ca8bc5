"""Satisfaction report arithmetic, from counts.

- CSAT % = satisfied / rated × 100, where rated = issues (or customer-level feedback) with a
  verdict: one verdict per issue, whatever scale or words decided it.
- NPS = % promoters (9-10) − % detractors (0-6) among the latest nps10 answer of each issue.
- CES = the average of the latest ces7 answer of each issue (1 very hard .. 7 very easy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Counts:
    rated: int = 0
    satisfied: int = 0
    neutral: int = 0
    dissatisfied: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0
    ces_answers: int = 0
    ces_sum: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            *(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values(), strict=True))
        )


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def summarise(counts: Counts) -> dict[str, Any]:
    nps = None
    if counts.nps_answers:
        nps = round(100 * (counts.promoters - counts.detractors) / counts.nps_answers, 1)
    return {
        "rated": counts.rated,
        "verdicts": {
            "satisfied": counts.satisfied,
            "neutral": counts.neutral,
            "dissatisfied": counts.dissatisfied,
        },
        "csat_percent": _percent(counts.satisfied, counts.rated),
        "nps": {
            "score": nps,
            "answers": counts.nps_answers,
            "promoters": counts.promoters,
            "passives": counts.nps_answers - counts.promoters - counts.detractors,
            "detractors": counts.detractors,
        },
        "ces": {
            "average": round(counts.ces_sum / counts.ces_answers, 2)
            if counts.ces_answers
            else None,
            "answers": counts.ces_answers,
        },
    }
