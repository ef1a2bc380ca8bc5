"""improvement's API: follow-ups and proposals to read, and to move along. Thin: validate, call
a handler or the repository, answer with a read model."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from services.improvement.adapters import repository as repo
from services.improvement.domain.themes import theme_name
from services.improvement.handlers import followups, themes
from shared.auth import Principal, require
from shared.contracts import (
    Channel,
    CustomerRef,
    Evidence,
    FollowupStatus,
    Intent,
    ProposalStatus,
    Verdict,
)
from shared.http import DatabaseDep
from shared.paging import CountedPage, Cursor, Limit, Offset, PageRequest, WithTotal, page_of
from shared.privacy import shown_to
from shared.validation import NoNul, Timestamp

router = APIRouter(prefix="/v1")
CanRead = Annotated[Principal, Depends(require("improvements:read"))]
CanWrite = Annotated[Principal, Depends(require("improvements:write"))]
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


class FollowupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    followup_id: uuid.UUID = Field(validation_alias="id")
    issue_id: uuid.UUID | None
    customer: CustomerRef | None
    channel: Channel | None
    need: str | None
    intent: Intent | None
    verdict: Verdict
    reason: str
    summary: str
    status: FollowupStatus
    note: str | None
    created_at: datetime
    updated_at: datetime


FOLLOWUP_KEY = (datetime, uuid.UUID)  # created_at, id
PROPOSAL_KEY = (float, datetime, uuid.UUID)  # priority, opened_at, id


class ProposalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    proposal_id: uuid.UUID = Field(validation_alias="id")
    theme_kind: Literal["intent", "need"]
    theme_key: str
    status: ProposalStatus
    evidence: Evidence
    recommendation: str
    priority: float
    note: str | None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def theme(self) -> str:
        return theme_name(self.theme_kind, self.theme_key)


def _followup_view(row: object, principal: Principal) -> FollowupRead:
    """Contacts masked unless the key holds customers:read."""
    followup = FollowupRead.model_validate(row)
    return followup.model_copy(update={"customer": shown_to(followup.customer, principal.scopes)})


@router.get("/followups", response_model=CountedPage[FollowupRead])
async def list_followups(
    db: DatabaseDep,
    principal: CanRead,
    status: FollowupStatus | None = None,
    issue_id: uuid.UUID | None = None,
    intent: Intent | None = None,
    channel: Channel | None = None,
    created_after: Annotated[Timestamp | None, Query(description="opened at or after")] = None,
    created_before: Annotated[
        Timestamp | None, Query(description="opened before (older follow-ups)")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
    total: WithTotal = False,
) -> CountedPage[FollowupRead]:
    """Newest first. Page with ``cursor`` (the answer's ``next_cursor``)."""
    page = PageRequest.of(limit, cursor, FOLLOWUP_KEY, offset=offset, with_total=total)
    async with db.unit_of_work() as uow:
        count, rows = await repo.followup_page(
            uow.session,
            status=status,
            issue_id=issue_id,
            intent=intent,
            page=page,
            channel=channel,
            created_after=created_after,
            created_before=created_before,
        )
    items, next_cursor = page_of(rows, limit, lambda row: (row.created_at, row.id))
    return CountedPage(
        items=[_followup_view(row, principal) for row in items],
        next_cursor=next_cursor,
        total=count,
        offset=offset,
    )


@router.patch("/followups/{followup_id}", response_model=FollowupRead)
async def move_followup(
    followup_id: uuid.UUID, move: FollowupMove, db: DatabaseDep, principal: CanWrite
) -> FollowupRead:
    async with db.unit_of_work() as uow:
        followup = await followups.move_followup(
            uow, followup_id, move.status, by=move.by, note=move.note
        )
    return _followup_view(followup, principal)


@router.get("/improvements", response_model=CountedPage[ProposalRead])
async def list_improvements(
    db: DatabaseDep,
    _: CanRead,
    status: ProposalStatus | None = None,
    theme_kind: Literal["intent", "need"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
    total: WithTotal = False,
) -> CountedPage[ProposalRead]:
    """Highest priority first, each with its evidence. Page with ``cursor``."""
    page = PageRequest.of(limit, cursor, PROPOSAL_KEY, offset=offset, with_total=total)
    async with db.unit_of_work() as uow:
        count, rows = await repo.proposal_page(
            uow.session, status=status, theme_kind=theme_kind, page=page
        )
    items, next_cursor = page_of(rows, limit, lambda row: (row.priority, row.opened_at, row.id))
    return CountedPage(
        items=[ProposalRead.model_validate(row) for row in items],
        next_cursor=next_cursor,
        total=count,
        offset=offset,
    )


@router.patch("/improvements/{proposal_id}", response_model=ProposalRead)
async def move_proposal(
    proposal_id: uuid.UUID, move: ProposalMove, db: DatabaseDep, _: CanWrite
) -> ProposalRead:
    async with db.unit_of_work() as uow:
        row = await themes.move_proposal(uow, proposal_id, move.status, by=move.by, note=move.note)
    return ProposalRead.model_validate(row)
