"""need_analyzer's queries. Functions take the session of the caller's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Row, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.need_analyzer.adapters.tables import analyses

_COLUMNS = {
    "issue_id": "uuid",
    "channel": "text",
    "customer": "jsonb",
    "subject": "text",
    "text": "text",
    "received_at": "timestamptz",
    "language": "text",
    "need": "text",
    "need_source": "text",
    "need_key": "text",
    "intent": "text",
    "secondary": "text",
    "sentiment_label": "text",
    "sentiment_score": "float8",
    "urgency": "text",
    "keywords": "jsonb",
    "explanations": "jsonb",
    "analyzer_version": "text",
    "analyzed_at": "timestamptz",
    "partial_reason": "text",
}
_JSON = {name for name, kind in _COLUMNS.items() if kind == "jsonb"}


def _column_value(name: str) -> str:
    if name == "keywords":  # an array per row cannot travel inside an array of arrays
        return "ARRAY(SELECT jsonb_array_elements_text(row.keywords::jsonb))"
    return f"row.{name}::jsonb" if name in _JSON else f"row.{name}"


# One array per column: the same text for any batch size, so it is planned once per connection.
_INSERT_NEW = text(
    f"INSERT INTO {analyses.schema}.{analyses.name} ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_column_value(name) for name in _COLUMNS)} FROM unnest("
    + ", ".join(
        f"CAST(:{name} AS {'text' if kind == 'jsonb' else kind}[])"
        for name, kind in _COLUMNS.items()
    )
    + f") AS row({', '.join(_COLUMNS)}) "
    "ON CONFLICT (issue_id) DO NOTHING RETURNING issue_id"
)


async def insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Store analyses of issues not stored yet, in one statement; return the ids stored."""
    if not rows:
        return set()
    stored = await session.execute(
        _INSERT_NEW,
        {
            name: [orjson.dumps(row[name]).decode() if name in _JSON else row[name] for row in rows]
            for name in _COLUMNS
        },
    )
    return set(stored.scalars())


async def get(session: AsyncSession, issue_id: uuid.UUID) -> Row[Any] | None:
    return (await session.execute(select(analyses).where(analyses.c.issue_id == issue_id))).first()


def _stale(
    version: str, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    where = [analyses.c.analyzer_version != version]
    if since is not None:
        where.append(analyses.c.received_at >= since)
    if until is not None:
        where.append(analyses.c.received_at < until)
    return where


async def count_stale(
    session: AsyncSession, version: str, *, since: datetime | None, until: datetime | None
) -> int:
    return await session.scalar(select(func.count()).where(*_stale(version, since, until))) or 0


async def claim_stale(
    session: AsyncSession,
    version: str,
    *,
    since: datetime | None,
    until: datetime | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """Up to ``limit`` issues analysed by another version, in id order after ``after``, locked
    for this transaction (another re-analysis skips them)."""
    query = (
        select(analyses)
        .where(*_stale(version, since, until))
        .order_by(analyses.c.issue_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        query = query.where(analyses.c.issue_id > after)
    return (await session.execute(query)).all()


async def replace(session: AsyncSession, issue_id: uuid.UUID, columns: dict[str, Any]) -> None:
    await session.execute(update(analyses).where(analyses.c.issue_id == issue_id).values(columns))


async def top_needs(
    session: AsyncSession, since: datetime, until: datetime, limit: int
) -> tuple[int, Sequence[Row[Any]], Sequence[Row[Any]]]:
    """Issues in the period, its most frequent needs and its intents. Needs group by their key
    (action:object); an analysis from before keys existed groups by its case-folded words."""
    period = (analyses.c.received_at >= since) & (analyses.c.received_at < until)
    group = func.coalesce(analyses.c.need_key, func.lower(func.btrim(analyses.c.need)))
    needs = (
        await session.execute(
            select(
                group.label("group"),
                func.max(analyses.c.need_key).label("need_key"),
                # The wording customers use most for it.
                func.mode().within_group(func.btrim(analyses.c.need)).label("need"),
                func.count().label("count"),
                func.array_agg(func.distinct(analyses.c.intent)).label("intents"),
            )
            .where(period, analyses.c.need.is_not(None))
            .group_by(group)
            .order_by(func.count().desc(), group)
            .limit(limit)
        )
    ).all()
    intents = (
        await session.execute(
            select(analyses.c.intent, func.count().label("count"))
            .where(period)
            .group_by(analyses.c.intent)
            .order_by(func.count().desc(), analyses.c.intent)
            .limit(limit)
        )
    ).all()
    total = await session.scalar(select(func.count()).select_from(analyses).where(period))
    return total or 0, needs, intents
