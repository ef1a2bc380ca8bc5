"""One verdict per issue: what a sequence of satisfaction statements does to the stored verdicts.

Pure: the caller reads the issues' current verdicts, calls ``decide`` with the batch's
statements in the order they arrived, and writes what it returns. The rules:

- an explicit rating beats text; between two of a kind the later statement wins
  (``supersedes``); a statement that changes nothing publishes nothing;
- the latest NPS and CES answers are kept whatever the verdict, if newer than those kept;
- a statement without a customer keeps the verdict's customer;
- every change names the verdict it ``replaces``.

Feedback that names no issue gets a verdict of its own, each time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.contracts import Ces7, CustomerRef, Nps10, Rating
from shared.satisfaction import Assessment


def supersedes(
    new: Assessment, new_at: datetime, current: Assessment | None, current_at: datetime | None
) -> bool:
    """An explicit rating beats text; between two of a kind, the later statement wins."""
    if current is None or current_at is None:
        return True
    if new.source != current.source:
        return new.source == "explicit"
    return new_at >= current_at and new != current


@dataclass(frozen=True)
class Statement:
    """Satisfaction stated about an issue (or about no issue), at ``stated_at``."""

    issue_id: uuid.UUID | None
    assessment: Assessment
    stated_at: datetime
    customer: CustomerRef | None
    rating: Rating | None = None


@dataclass(frozen=True)
class Verdict:
    """An issue's current verdict, with its latest NPS and CES answers."""

    id: uuid.UUID
    issue_id: uuid.UUID | None
    assessment: Assessment
    decided_at: datetime
    evaluated_at: datetime
    customer: CustomerRef | None = None
    nps: int | None = None
    nps_at: datetime | None = None
    ces: int | None = None
    ces_at: datetime | None = None


@dataclass(frozen=True)
class Change:
    """A new verdict to publish: ``verdict`` replaces ``replaces`` (None: the first)."""

    verdict: Verdict
    replaces: Assessment | None


@dataclass(frozen=True)
class Written:
    """A verdict to store: ``new`` (no row yet) or an update; ``reevaluated`` when the
    verdict itself changed, not only the NPS or CES answer it keeps."""

    verdict: Verdict
    new: bool
    reevaluated: bool


@dataclass(frozen=True)
class Outcome:
    changes: list[Change]  # in the order of the statements that made them
    written: list[Written]


def _answers(rating: Rating | None, at: datetime, kept: Verdict | None) -> dict[str, Any]:
    """The NPS or CES answer a rating gives, if it is newer than the one kept."""
    if isinstance(rating, Nps10) and (kept is None or kept.nps_at is None or at >= kept.nps_at):
        return {"nps": rating.value, "nps_at": at}
    if isinstance(rating, Ces7) and (kept is None or kept.ces_at is None or at >= kept.ces_at):
        return {"ces": rating.value, "ces_at": at}
    return {}


def decide(
    statements: Sequence[Statement],
    current: Mapping[uuid.UUID, Verdict],
    *,
    now: datetime,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> Outcome:
    """Apply ``statements`` in order to the ``current`` verdicts (by issue id): the changes
    to publish and the verdicts to store. ``now`` is the time of evaluation."""
    states: dict[uuid.UUID | int, Verdict] = {key: kept for key, kept in current.items()}
    reevaluated: set[uuid.UUID | int] = set()
    touched: list[uuid.UUID | int] = []
    changes: list[Change] = []
    for index, statement in enumerate(statements):
        # Feedback that names no issue has a verdict of its own, keyed by its position.
        key: uuid.UUID | int = statement.issue_id if statement.issue_id is not None else index
        kept = states.get(key)
        answers = _answers(statement.rating, statement.stated_at, kept)
        if kept is not None and not supersedes(
            statement.assessment, statement.stated_at, kept.assessment, kept.decided_at
        ):
            if answers:
                states[key] = replace(kept, **answers)
                touched.append(key)
            continue
        customer = statement.customer
        if customer is None and kept is not None:
            customer = kept.customer
        base = kept or Verdict(
            id=new_id(),
            issue_id=statement.issue_id,
            assessment=statement.assessment,
            decided_at=statement.stated_at,
            evaluated_at=now,
        )
        verdict = replace(
            base,
            assessment=statement.assessment,
            decided_at=statement.stated_at,
            evaluated_at=now,
            customer=customer,
            **answers,
        )
        states[key] = verdict
        touched.append(key)
        reevaluated.add(key)
        changes.append(Change(verdict, kept.assessment if kept else None))
    written = [
        Written(states[key], new=key not in current, reevaluated=key in reevaluated)
        for key in dict.fromkeys(touched)
    ]
    return Outcome(changes, written)
