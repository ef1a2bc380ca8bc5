"""need_analyzer's queries. Functions take the session of the caller's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Row,
    Text,
    case,
    func,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.need_analyzer.adapters.tables import analyses
from services.need_analyzer.domain.needs import PairCount

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


def _need_group() -> ColumnElement[Any]:
    """The group of an issue's need: its key (action:object); an analysis from before keys
    existed groups by its case-folded words; null without a need."""
    group = func.coalesce(analyses.c.need_key, func.lower(func.btrim(analyses.c.need)))
    return case((analyses.c.need.is_not(None), group))


async def pair_counts(
    session: AsyncSession, since: datetime, until: datetime, *, previous_since: datetime | None
) -> list[PairCount]:
    """Issues per (need group, intent) in the period and, from ``previous_since``, in the
    period before: one scan of the received_at index, whatever the domain then ranks."""
    start = previous_since if previous_since is not None else since
    current = (analyses.c.received_at >= since).label("current")
    group = _need_group().label("need")
    rows = await session.execute(
        select(current, group, analyses.c.intent, func.count())
        .where(analyses.c.received_at >= start, analyses.c.received_at < until)
        .group_by(current, group, analyses.c.intent)
    )
    return [PairCount(bool(c), n, str(i), int(k)) for c, n, i, k in rows.tuples()]


async def need_wordings(
    session: AsyncSession, since: datetime, until: datetime, groups: Sequence[str]
) -> dict[str, tuple[str, str | None]]:
    """For each need group of the period: the wording customers use most, and its key."""
    if not groups:
        return {}
    group = _need_group()
    rows = await session.execute(
        select(
            group,
            func.mode().within_group(func.btrim(analyses.c.need)),
            func.max(analyses.c.need_key),
        )
        .where(analyses.c.received_at >= since, analyses.c.received_at < until)
        .where(group.in_(groups))
        .group_by(group)
    )
    return {str(key): (str(words), need_key) for key, words, need_key in rows.tuples()}


async def examples_of(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    *,
    by: str,
    keys: Sequence[str],
    per_key: int,
    chars: int,
) -> dict[str, list[Row[Any]]]:
    """The latest ``per_key`` issues of the period for each need group (``by="need"``) or
    intent, their text cut to ``chars`` characters: for each key, the received_at index read
    backwards until it has found them."""
    if not keys or per_key < 1:
        return {}
    wanted = (
        func.unnest(literal(list(keys), ARRAY(Text))).table_valued("key").render_derived("wanted")
    )
    match = _need_group() if by == "need" else analyses.c.intent
    latest = (
        select(
            analyses.c.issue_id,
            analyses.c.received_at,
            analyses.c.language,
            func.left(analyses.c.text, chars).label("text"),
        )
        .where(
            analyses.c.received_at >= since,
            analyses.c.received_at < until,
            match == wanted.c.key,
        )
        .order_by(analyses.c.received_at.desc())
        .limit(per_key)
        .lateral("latest")
    )
    rows = await session.execute(select(wanted.c.key, latest).join(latest, true()))
    found: dict[str, list[Row[Any]]] = {}
    for row in rows:
        found.setdefault(row.key, []).append(row)
    return found
