"""When a theme earns a proposal, and the moves people may make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.improvement.domain.themes import (
    ThemeStats,
    Thresholds,
    decide,
    need_key,
    wilson_lower_bound,
)
from shared.contracts import FOLLOWUP_MOVES, PROPOSAL_MOVES

END = datetime(2026, 3, 1, tzinfo=UTC)


def stats(
    issues: int,
    rated: int,
    satisfied: int,
    dissatisfied: int,
    baseline: int,
    history_days: int = 60,
) -> ThemeStats:
    return ThemeStats(
        period_start=END - timedelta(days=7),
        period_end=END,
        issues=issues,
        rated=rated,
        satisfied=satisfied,
        dissatisfied=dissatisfied,
        baseline_issues=baseline,
        baseline_rated=baseline,
        baseline_satisfied=baseline // 2,
        first_issue_at=END - timedelta(days=history_days),
    )


def test_a_clearly_unhappy_theme_is_proposed_with_its_evidence() -> None:
    decision = decide(stats(40, 30, 6, 20, baseline=160), Thresholds())
    assert decision.propose
    assert decision.evidence.dissatisfied_share == pytest.approx(0.667, abs=0.001)
    assert decision.evidence.csat == 0.2
    assert decision.evidence.trend == 1.0  # 40 a week against 160 in four weeks
    assert decision.priority == pytest.approx(40 * 20 / 30, rel=0.01)


@pytest.mark.parametrize(
    ("theme", "why"),
    [
        (stats(8, 8, 0, 8, baseline=10), "too few issues"),
        (stats(14, 11, 4, 5, baseline=56), "45% of 11 could be chance"),
        (stats(40, 30, 20, 6, baseline=160), "mostly satisfied"),
        (stats(40, 3, 0, 3, baseline=160), "too few rated"),
    ],
)
def test_no_proposal_without_enough_evidence(theme: ThemeStats, why: str) -> None:
    assert not decide(theme, Thresholds()).propose, why


def test_a_surge_is_proposed_even_when_ratings_are_missing() -> None:
    assert decide(stats(60, 0, 0, 0, baseline=40), Thresholds()).propose
    # ... but not for a young theme, whose baseline is not known yet.
    assert not decide(stats(60, 0, 0, 0, baseline=4, history_days=9), Thresholds()).propose


def test_wilson_lower_bound() -> None:
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(5, 11) < 0.4 < wilson_lower_bound(44, 67)


def test_needs_worded_alike_share_a_theme() -> None:
    assert need_key("A refund for order 1234!") == need_key("refund for order 1234")
    assert need_key("更快的响应速度。") == need_key("更快的响应速度")
    assert need_key(None) is None and need_key("  ") is None


def test_moves() -> None:
    assert "contacted" in FOLLOWUP_MOVES["open"] and "open" in FOLLOWUP_MOVES["resolved"]
    assert "contacted" not in FOLLOWUP_MOVES["resolved"]
    assert PROPOSAL_MOVES["done"] == frozenset() and "in_progress" in PROPOSAL_MOVES["accepted"]
    assert "done" not in PROPOSAL_MOVES["open"]
