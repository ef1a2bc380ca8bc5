"""Themes and proposals, off the message path.

A message only marks the themes it changed (``repository.save``). The theme worker wakes
every ``interval``, takes each marked theme in a transaction of its own, under a try-lock (one
evaluation of a theme at a time across replicas; the others skip it, never wait), removes the
theme's marks, recomputes its statistics and opens or updates its proposal. Marks that arrive
meanwhile are evaluated in the next round.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from services.improvement.adapters import repository as repo
from services.improvement.domain.followups import Theme, proposal_change
from services.improvement.domain.themes import Thresholds, decide, recommendation, theme_name
from shared.contracts import Evidence, ImprovementProposed, ImprovementUpdated, ProposalStatus
from shared.db import Database, UnitOfWork, is_transient_db_error
from shared.errors import NotFound
from shared.logging import get_logger

log = get_logger(__name__)
BUSY_RATIO = 4.0  # rest after a round, as a multiple of the time the round took


def _updated_event(row: Row[Any], **change: Any) -> ImprovementUpdated:
    return ImprovementUpdated(
        proposal_id=row.id,
        theme=theme_name(row.theme_kind, row.theme_key),
        theme_kind=row.theme_kind,
        theme_key=row.theme_key,
        evidence=Evidence.model_validate(row.evidence),
        recommendation=row.recommendation,
        priority=row.priority,
        status=row.status,
        updated_at=row.updated_at,
        **change,
    )


async def refresh_theme(uow: UnitOfWork, theme: Theme, thresholds: Thresholds) -> None:
    """Recompute a theme's evidence; open a proposal when it crosses the thresholds, or bring
    its open proposal up to date. The caller holds the theme's lock."""
    kind, key = theme
    stats = await repo.theme_stats(uow.session, kind, key, thresholds)
    if stats is None:
        return
    decision = decide(stats, thresholds)
    active = await repo.active_proposal(uow.session, kind, key)
    now = datetime.now(UTC)
    evidence = {
        "evidence": decision.evidence.model_dump(mode="json"),
        "priority": decision.priority,
    }
    if active is not None:
        if Evidence.model_validate(active.evidence) == decision.evidence:
            return
        updated = await repo.update_proposal(uow.session, active.id, **evidence, updated_at=now)
        uow.emit(_updated_event(updated, previous_status=active.status, change="evidence"))
        return
    if not decision.propose or await repo.closed_since(uow.session, kind, key, stats.period_start):
        return
    proposal_id = uuid.uuid4()
    advice = recommendation(kind, key)
    await repo.insert_proposal(
        uow.session,
        id=proposal_id,
        theme_kind=kind,
        theme_key=key,
        status="open",
        recommendation=advice,
        opened_at=now,
        updated_at=now,
        **evidence,
    )
    uow.emit(
        ImprovementProposed(
            proposal_id=proposal_id,
            theme=theme_name(kind, key),
            theme_kind=kind,
            theme_key=key,
            evidence=decision.evidence,
            recommendation=advice,
            priority=decision.priority,
            opened_at=now,
        )
    )


async def evaluate_theme(db: Database, theme: Theme, thresholds: Thresholds) -> bool:
    """Evaluate one marked theme unless another worker is at it; whether this one did."""
    async with db.unit_of_work() as uow:
        if not await repo.try_lock_theme(uow.session, theme):
            return False
        if not await repo.take_theme_changes(uow.session, theme):
            return False  # evaluated meanwhile by another worker
        await refresh_theme(uow, theme, thresholds)
    return True


async def evaluate_changed_themes(db: Database, thresholds: Thresholds, limit: int = 500) -> int:
    """One round: every theme marked since the last; returns how many were evaluated."""
    async with db.unit_of_work() as uow:
        themes = await repo.changed_themes(uow.session, limit)
    evaluated = 0
    for theme in themes:
        try:
            evaluated += await evaluate_theme(db, theme, thresholds)
        except Exception as exc:
            if is_transient_db_error(exc):
                raise
            # One theme that cannot be evaluated keeps its marks and holds back no other.
            log.exception("theme evaluation failed", theme=theme_name(*theme))
    return evaluated


def theme_worker(
    thresholds: Thresholds, interval: float
) -> Callable[[Database], Coroutine[Any, Any, None]]:
    """The loop the service runs beside its consumer; it outlives database outages.

    It rests at least four times as long as its last round took, so however large a hot theme
    grows (its statistics are recomputed from its issues), evaluating it takes at most a fifth
    of the worker's time; proposals then follow the traffic a little later, never the reverse.
    """

    async def work(db: Database) -> None:
        delay = interval
        while True:
            began = time.monotonic()
            try:
                await evaluate_changed_themes(db, thresholds)
                delay = max(interval, BUSY_RATIO * (time.monotonic() - began))
            except Exception as exc:
                delay = min(max(delay * 2, 1.0), 30.0)
                log.warning("theme evaluation failed", error=repr(exc), retry_in=delay)
            await asyncio.sleep(delay)

    return work


async def move_proposal(
    uow: UnitOfWork, proposal_id: uuid.UUID, status: ProposalStatus, *, by: str, note: str | None
) -> Row[Any]:
    """A person moves a proposal along, or notes something on it."""
    row = await repo.proposal_for_update(uow.session, proposal_id)
    if row is None:
        raise NotFound(f"no proposal {proposal_id}")
    change = proposal_change(row.status, status, note)
    if change is None:
        return row
    now = datetime.now(UTC)
    closed = {"closed_at": now} if change == "status" and status in ("done", "rejected") else {}
    updated = await repo.update_proposal(
        uow.session, proposal_id, status=status, note=note, updated_at=now, **closed
    )
    uow.emit(_updated_event(updated, previous_status=row.status, change=change, by=by, note=note))
    return updated
