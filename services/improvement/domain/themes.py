"""Themes: the issues that share an intent or a need. A theme earns an improvement proposal when
it is large enough and either clearly unhappy or suddenly much busier than usual.

Windows are measured in the issues' own time (``received_at``), ending at the theme's latest
issue, so that replays and out-of-order events reach the same result as live traffic.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.contracts import Evidence

ThemeKind = Literal["intent", "need"]


@dataclass(frozen=True)
class Thresholds:
    window: timedelta = timedelta(days=7)
    baseline: timedelta = timedelta(days=28)
    # Propose when at least ``min_issues`` in the window and either
    min_issues: int = 10
    # ... at least ``min_rated`` have a verdict and the dissatisfied share exceeds this with
    # 95 % confidence (the lower Wilson bound, so that a handful of unlucky ratings in a small
    # theme is not mistaken for a trend),
    min_rated: int = 5
    dissatisfied_share: float = 0.4
    # ... or the window's daily volume is at least this many times the baseline's.
    volume_ratio: float = 3.0


@dataclass(frozen=True)
class ThemeStats:
    period_start: datetime
    period_end: datetime
    issues: int
    rated: int
    satisfied: int
    dissatisfied: int
    baseline_issues: int
    baseline_rated: int
    baseline_satisfied: int
    first_issue_at: datetime
    sample_issue_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    propose: bool
    evidence: Evidence
    priority: float


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def wilson_lower_bound(successes: int, trials: int, z: float = 1.96) -> float:
    """The lower end of the 95 % Wilson score interval of a proportion."""
    if not trials:
        return 0.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return (centre - spread) / (1 + z * z / trials)


def decide(stats: ThemeStats, thresholds: Thresholds) -> Decision:
    window_days = thresholds.window / timedelta(days=1)
    # A young theme has no baseline to compare with: no trend until half the baseline is known.
    known = min(thresholds.baseline, stats.period_start - stats.first_issue_at)
    baseline_days = known / timedelta(days=1)
    trend = None
    if known >= thresholds.baseline / 2 and stats.baseline_issues:
        baseline_rate = stats.baseline_issues / baseline_days
        trend = round((stats.issues / window_days) / baseline_rate, 2)
    share = _share(stats.dissatisfied, stats.rated)
    reasons = []
    if stats.issues >= thresholds.min_issues:
        lower = wilson_lower_bound(stats.dissatisfied, stats.rated)
        if stats.rated >= thresholds.min_rated and lower > thresholds.dissatisfied_share:
            reasons.append(
                f"{share:.0%} of rated issues dissatisfied, at least {lower:.0%} with 95% "
                f"confidence (threshold {thresholds.dissatisfied_share:.0%})"
            )
        if trend is not None and trend >= thresholds.volume_ratio:
            reasons.append(
                f"volume {trend}x its trailing baseline (threshold {thresholds.volume_ratio}x)"
            )
    evidence = Evidence(
        issues=stats.issues,
        dissatisfied=stats.dissatisfied,
        csat=_share(stats.satisfied, stats.rated),
        trend=trend,
        rated=stats.rated,
        satisfied=stats.satisfied,
        dissatisfied_share=share,
        baseline_issues=stats.baseline_issues,
        baseline_csat=_share(stats.baseline_satisfied, stats.baseline_rated),
        period_start=stats.period_start,
        period_end=stats.period_end,
        sample_issue_ids=stats.sample_issue_ids,
        reasons=reasons,
    )
    # Impact: how many customers, times how unhappy they are (unrated issues count as half).
    unhappiness = share if share is not None else 0.5
    return Decision(bool(reasons), evidence, round(stats.issues * unhappiness, 2))


_RECOMMENDATIONS = {
    "refund": "Shorten and explain the refund process: state timelines up front, automate "
    "refund status updates, and review why refunds are requested.",
    "delivery": "Review carrier performance and tracking updates for the affected orders; tell "
    "customers proactively when a delivery slips.",
    "billing": "Audit the charges behind these issues (double charges, unexpected fees) and make "
    "invoices and pricing clearer.",
    "account": "Fix the login and account-recovery path customers get stuck on; add self-service "
    "for password and contact changes.",
    "product_quality": "Inspect the batches and suppliers behind the defects; tighten quality "
    "control and packaging, and fast-track replacements.",
    "technical": "Triage the reported errors with engineering: reproduce, fix, and tell the "
    "affected customers when it is done.",
    "response_speed": "Staff to the peaks and set a first-response target; route and automate "
    "routine requests so customers stop waiting.",
    "cancellation": "Make cancelling as easy as signing up, and ask why customers leave.",
    "complaint": "Review the conversations behind these complaints with the team leads; coach "
    "on tone and ownership.",
    "feedback": "Read the low ratings' comments and follow up on the recurring causes.",
    "inquiry": "Answer the recurring questions where customers look first (product pages, FAQ, "
    "order status) so they need not ask.",
}


def recommendation(kind: ThemeKind, key: str) -> str:
    if kind == "need":
        return (
            f"Customers keep asking for '{key}'. Decide how the product or service will meet "
            "this need, and tell them."
        )
    return _RECOMMENDATIONS.get(key, "Look into the recurring cause behind these issues.")


def theme_name(kind: ThemeKind, key: str) -> str:
    return f"{kind}:{key}"


_ARTICLES = re.compile(r"^(?:a|an|the|my|our|some)\s+", re.IGNORECASE)
_NOT_WORD = re.compile(r"[\s\W_]+")


def need_key(need: str | None) -> str | None:
    """Needs worded alike share a theme: case, spacing, punctuation and articles set aside."""
    if not need:
        return None
    key = _ARTICLES.sub("", need.strip().lower())
    key = _NOT_WORD.sub(" ", key).strip()
    return key[:200] or None
