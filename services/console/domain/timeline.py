"""One issue's way through the loop, in time order, from what each service knows of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.console.domain.models import (
    Followup,
    Issue,
    IssueSatisfaction,
    StoredAnalysis,
)

# Where the same instant holds several steps, the loop's order decides.
STEP_ORDER = (
    "received",
    "analysed",
    "feedback",
    "verdict",
    "followup_opened",
    "followup_updated",
    "resolved",
)


@dataclass(frozen=True)
class Step:
    kind: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


def timeline(
    issue: Issue | None,
    analysis: StoredAnalysis | None,
    satisfaction: IssueSatisfaction | None,
    followups: Sequence[Followup],
) -> list[Step]:
    steps: list[Step] = []
    if issue is not None:
        steps.append(Step("received", issue.received_at, {"channel": issue.channel}))
        if issue.resolved_at is not None:
            steps.append(Step("resolved", issue.resolved_at, dict(issue.resolution or {})))
    if analysis is not None:
        steps.append(Step("analysed", analysis.analyzed_at, {"analysis": analysis.analysis}))
    if satisfaction is not None:
        for item in satisfaction.feedback:
            steps.append(
                Step(
                    "feedback", item.submitted_at, {"rating": item.rating, "comment": item.comment}
                )
            )
        if satisfaction.verdict is not None:
            verdict = satisfaction.verdict
            steps.append(Step("verdict", verdict.decided_at, {"verdict": verdict}))
    for followup in followups:
        steps.append(Step("followup_opened", followup.created_at, {"followup": followup}))
        if followup.updated_at > followup.created_at:
            steps.append(Step("followup_updated", followup.updated_at, {"followup": followup}))
    return sorted(steps, key=lambda step: (step.at, STEP_ORDER.index(step.kind)))
