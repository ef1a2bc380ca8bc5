"""improvement's API: follow-ups and proposals to read, and to move along."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import Row, Table, func, select

from services.improvement import handlers
from services.improvement.adapters.tables import followups, proposals
from services.improvement.domain.themes import theme_name
from shared.auth import Principal, require
from shared.contracts import FollowupStatus, Intent, ProposalStatus
from shared.http import DatabaseDep
from shared.problems import Problem
from shared.validation import NoNul

router = APIRouter(prefix="/v1")
CanRead = Annotated[Principal, Depends(require("improvements:read"))]
CanWrite = Annotated[Principal, Depends(require("improvements:write"))]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), NoNul]
By = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]


class FollowupMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: FollowupStatus
    by: By
    note: Note | None = None


class ProposalMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: ProposalStatus
    by: By
    note: Note | None = None


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except handlers.NotFound as exc:
        raise Problem(404, "Not found", str(exc)) from exc
    except handlers.InvalidMove as exc:
        raise Problem(409, "Conflict", str(exc), field="status") from exc


def _followup(row: Row[Any]) -> dict[str, Any]:
    return {
        "followup_id": row.id,
        "issue_id": row.issue_id,
        "customer": row.customer,
        "channel": row.channel,
        "need": row.need,
        "intent": row.intent,
        "verdict": row.verdict,
        "reason": row.reason,
        "summary": row.summary,
        "status": row.status,
        "note": row.note,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _proposal(row: Row[Any]) -> dict[str, Any]:
    return {
        "proposal_id": row.id,
        "theme": theme_name(row.theme_kind, row.theme_key),
        "theme_kind": row.theme_kind,
        "theme_key": row.theme_key,
        "status": row.status,
        "evidence": row.evidence,
        "recommendation": row.recommendation,
        "priority": row.priority,
        "note": row.note,
        "opened_at": row.opened_at,
        "updated_at": row.updated_at,
        "closed_at": row.closed_at,
    }


async def _page(
    db: DatabaseDep, table: Table, conditions: list[Any], order: list[Any], limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    async with db.unit_of_work() as uow:
        total = await uow.session.scalar(select(func.count()).select_from(table).where(*conditions))
        rows = (
            await uow.session.execute(
                select(table).where(*conditions).order_by(*order).limit(limit).offset(offset)
            )
        ).all()
    return total or 0, list(rows)


@router.get("/followups")
async def list_followups(
    db: DatabaseDep,
    _: CanRead,
    status: FollowupStatus | None = None,
    issue_id: uuid.UUID | None = None,
    intent: Intent | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Newest first."""
    conditions = [
        c
        for c in (
            followups.c.status == status if status else None,
            followups.c.issue_id == issue_id if issue_id else None,
            followups.c.intent == intent if intent else None,
        )
        if c is not None
    ]
    total, rows = await _page(
        db, followups, conditions, [followups.c.created_at.desc(), followups.c.id], limit, offset
    )
    return {"total": total, "offset": offset, "items": [_followup(row) for row in rows]}


@router.patch("/followups/{followup_id}")
async def move_followup(
    followup_id: uuid.UUID, move: FollowupMove, db: DatabaseDep, _: CanWrite
) -> dict[str, Any]:
    with _refusals():
        async with db.unit_of_work() as uow:
            row = await handlers.move_followup(
                uow, followup_id, move.status, by=move.by, note=move.note
            )
    return _followup(row)


@router.get("/improvements")
async def list_improvements(
    db: DatabaseDep,
    _: CanRead,
    status: ProposalStatus | None = None,
    theme_kind: Literal["intent", "need"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Highest priority first, each with its evidence."""
    conditions = [
        c
        for c in (
            proposals.c.status == status if status else None,
            proposals.c.theme_kind == theme_kind if theme_kind else None,
        )
        if c is not None
    ]
    order = [proposals.c.priority.desc(), proposals.c.opened_at, proposals.c.id]
    total, rows = await _page(db, proposals, conditions, order, limit, offset)
    return {"total": total, "offset": offset, "items": [_proposal(row) for row in rows]}


@router.patch("/improvements/{proposal_id}")
async def move_proposal(
    proposal_id: uuid.UUID, move: ProposalMove, db: DatabaseDep, _: CanWrite
) -> dict[str, Any]:
    with _refusals():
        async with db.unit_of_work() as uow:
            row = await handlers.move_proposal(
                uow, proposal_id, move.status, by=move.by, note=move.note
            )
    return _proposal(row)
