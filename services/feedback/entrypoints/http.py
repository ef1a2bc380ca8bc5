"""feedback's read API: the satisfaction summary managers ask for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query

from services.feedback.adapters.reports import GroupBy, counts_by_group
from services.feedback.domain.reports import Counts, summarise
from shared.auth import Principal, require
from shared.http import DatabaseDep
from shared.problems import Problem
from shared.validation import Timestamp

router = APIRouter(prefix="/v1")
CanReadSatisfaction = Annotated[Principal, Depends(require("satisfaction:read"))]


@router.get("/satisfaction/summary")
async def satisfaction_summary(
    db: DatabaseDep,
    _: CanReadSatisfaction,
    since: Annotated[Timestamp | None, Query(description="default: 30 days before until")] = None,
    until: Annotated[Timestamp | None, Query(description="default: now")] = None,
    group_by: GroupBy = "none",
    tz: Annotated[
        str, Query(max_length=64, description="IANA zone of `day` (Asia/Shanghai)")
    ] = "UTC",
) -> dict[str, Any]:
    """CSAT %, NPS, average CES and verdict counts of a period, by channel, intent or day.

    An issue belongs to the period in which the statement that decided its verdict was made.
    """
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    if since >= until:
        raise Problem(422, "Invalid request", "since must be before until", field="since")
    if until - since > timedelta(days=366 * 5):
        raise Problem(422, "Invalid request", "the period is limited to 5 years", field="since")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Problem(422, "Invalid request", f"unknown time zone {tz!r}", field="tz") from exc
    async with db.unit_of_work() as uow:
        groups = await counts_by_group(uow.session, since, until, group_by, tz)
    total = reduce(Counts.__add__, groups.values(), Counts())
    return {
        "since": since,
        "until": until,
        "group_by": group_by,
        "tz": tz,
        "total": summarise(total),
        "groups": []
        if group_by == "none"
        else [{"key": key, **summarise(counts)} for key, counts in groups.items()],
    }
