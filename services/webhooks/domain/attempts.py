"""What follows one delivery attempt: done, a retry after the schedule's next delay, failed,
or the endpoint paused by its circuit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["delivered", "retry", "failed", "paused"]


@dataclass(frozen=True)
class Attempt:
    """One call: the answer's status (None when there was none) or the error."""

    status_code: int | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver says the endpoint no longer exists (Standard Webhooks)."""
        return self.status_code == 410


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    retry_in: float | None = None
    pause_reason: str | None = None


def decide(
    attempt: Attempt,
    *,
    try_number: int,
    schedule: Sequence[float],
    consecutive_failures: int,
    circuit_failures: int,
) -> Decision:
    """``try_number`` counts from 1 within the current chain; ``consecutive_failures`` is the
    endpoint's count including this attempt."""
    if attempt.succeeded:
        return Decision("delivered")
    if attempt.gone:
        return Decision("paused", pause_reason="the receiver answered 410 Gone")
    if consecutive_failures >= circuit_failures:
        return Decision(
            "paused",
            pause_reason=f"{consecutive_failures} consecutive failed attempts "
            f"(last: {describe(attempt)})",
        )
    if try_number <= len(schedule):
        return Decision("retry", retry_in=schedule[try_number - 1])
    return Decision("failed")


def describe(attempt: Attempt) -> str:
    if attempt.status_code is not None:
        return f"HTTP {attempt.status_code}"
    return attempt.error or "no answer"
