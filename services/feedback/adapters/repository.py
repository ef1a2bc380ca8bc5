"""feedback's queries, set-based: each function is one statement for a whole batch.

Functions take the session of the caller's unit of work; the caller holds the issues' locks.
A batch's rows travel as one array per column (``unnest``), so each statement has one text
whatever the batch's size: compiled once by SQLAlchemy, prepared once per connection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Table,
    Text,
    Uuid,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import String, TypeEngine

from services.feedback.adapters.tables import feedback, issues, verdicts
from services.feedback.domain.verdicts import Verdict, Written
from shared.contracts import CustomerRef
from shared.satisfaction import Assessment


@dataclass(frozen=True)
class Context:
    """What feedback knows of an issue that its verdict shows."""

    channel: str | None
    intent: str | None


# ------------------------------------------------------------------ rows as arrays


def _carried(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    # JSON travels as text and is cast back; strings as text, so that a value too long for
    # its column is refused by the column, not cut by an array cast to varchar(n).
    return Text() if isinstance(kind, JSONB | String) else kind


def _rows(name: str, columns: Sequence[Column[Any]]) -> TableValuedAlias:
    """``unnest`` of one array parameter per column (``{name}_{column}``), as rows."""
    return (
        func.unnest(
            *(bindparam(f"{name}_{c.name}", type_=ARRAY(_carried(c.type))) for c in columns)
        )
        .table_valued(*(column(c.name, _carried(c.type)) for c in columns))
        .render_derived(name=name)
    )


def _value(rows: TableValuedAlias, c: Column[Any]) -> ColumnElement[Any]:
    return cast(rows.c[c.name], JSONB) if isinstance(c.type, JSONB) else rows.c[c.name]


def _params(
    name: str, columns: Sequence[Column[Any]], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for c in columns:
        values = [row[c.name] for row in rows]
        if isinstance(c.type, JSONB):
            values = [None if v is None else json.dumps(v) for v in values]
        params[f"{name}_{c.name}"] = values
    return params


def _columns_of(table: Table, names: Iterable[str]) -> tuple[Column[Any], ...]:
    return tuple(table.c[name] for name in names)


# ------------------------------------------------------------------ issues

_IDS = any_(bindparam("ids", type_=ARRAY(Uuid)))
_CONTEXTS = select(issues.c.issue_id, issues.c.channel, issues.c.intent).where(
    issues.c.issue_id == _IDS
)


@cache
def _remember(names: tuple[str, ...], shown: tuple[str, ...], unless_newer: str | None) -> Update:
    columns = _columns_of(issues, names)
    facts = _rows("fact", columns)
    statement = insert(issues).from_select(
        list(names), select(*(_value(facts, c) for c in columns))
    )
    where = None
    if unless_newer is not None:
        kept_at = issues.c[unless_newer]
        where = kept_at.is_(None) | (kept_at <= statement.excluded[unless_newer])
    kept = (
        statement.on_conflict_do_update(
            index_elements=[issues.c.issue_id],
            set_={name: statement.excluded[name] for name in names if name != "issue_id"},
            where=where,
        )
        .returning(issues.c.issue_id, *(issues.c[name] for name in shown))
        .cte("kept")
    )
    return (
        update(verdicts)
        .where(verdicts.c.issue_id == kept.c.issue_id)
        .values({name: kept.c[name] for name in shown})
        .add_cte(kept)
    )


async def remember(
    session: AsyncSession,
    facts: Sequence[Mapping[str, Any]],
    *,
    shown: Sequence[str],
    unless_newer: str | None = None,
) -> None:
    """Keep what is known of each issue (at most one fact per issue: a statement cannot change
    a row twice), and show the ``shown`` columns on its verdict, if it has one; one statement.

    With ``unless_newer`` (a timestamp column of the facts), an issue that already holds a
    later time is left alone, and so is its verdict: a late, older event changes nothing."""
    if not facts:
        return
    names = tuple(facts[0])
    statement = _remember(names, tuple(shown), unless_newer)
    await session.execute(statement, _params("fact", _columns_of(issues, names), facts))


async def contexts(
    session: AsyncSession, issue_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Context]:
    """The channel and intent of the issues feedback has heard of."""
    rows = await session.execute(_CONTEXTS, {"ids": list(set(issue_ids))})
    return {row.issue_id: Context(row.channel, row.intent) for row in rows}


# ------------------------------------------------------------------ feedback

_FEEDBACK = _columns_of(
    feedback, ("feedback_id", "issue_id", "customer", "rating", "comment", "submitted_at")
)
_submitted = _rows("submitted", _FEEDBACK)
_INSERT_FEEDBACK = (
    insert(feedback)
    .from_select([c.name for c in _FEEDBACK], select(*(_value(_submitted, c) for c in _FEEDBACK)))
    .on_conflict_do_nothing(index_elements=[feedback.c.feedback_id])
)


async def insert_feedback(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store feedback not stored yet (by ``feedback_id``), in one statement."""
    if rows:
        await session.execute(_INSERT_FEEDBACK, _params("submitted", _FEEDBACK, rows))


# ------------------------------------------------------------------ verdicts

_CURRENT = select(verdicts).where(verdicts.c.issue_id == _IDS)


async def current_verdicts(
    session: AsyncSession, issue_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Verdict]:
    """The current verdicts of the issues that have one."""
    rows = await session.execute(_CURRENT, {"ids": list(set(issue_ids))})
    return {
        row.issue_id: Verdict(
            id=row.id,
            issue_id=row.issue_id,
            assessment=Assessment(row.verdict, row.score, row.source, row.basis),
            decided_at=row.decided_at,
            evaluated_at=row.evaluated_at,
            customer=CustomerRef.model_validate(row.customer) if row.customer else None,
            nps=row.nps,
            nps_at=row.nps_at,
            ces=row.ces,
            ces_at=row.ces_at,
        )
        for row in rows
    }


def _verdict_columns(verdict: Verdict, context: Context | None) -> dict[str, Any]:
    return {
        "id": verdict.id,
        "issue_id": verdict.issue_id,
        "customer": verdict.customer.model_dump(mode="json") if verdict.customer else None,
        "verdict": verdict.assessment.verdict,
        "score": verdict.assessment.score,
        "source": verdict.assessment.source,
        "basis": verdict.assessment.basis,
        "decided_at": verdict.decided_at,
        "evaluated_at": verdict.evaluated_at,
        "nps": verdict.nps,
        "nps_at": verdict.nps_at,
        "ces": verdict.ces,
        "ces_at": verdict.ces_at,
        # A re-evaluated verdict shows its issue's channel and intent, when they are known.
        "linked": context is not None,
        "channel": context.channel if context else None,
        "intent": context.intent if context else None,
    }


_VERDICT = tuple(c for c in verdicts.c)
_new = _rows("new", _VERDICT)
_INSERT_VERDICTS = insert(verdicts).from_select(
    [c.name for c in _VERDICT], select(*(_value(_new, c) for c in _VERDICT))
)
# An update also says whether to show the issue's channel and intent (``linked``): a verdict
# that only kept a newer NPS or CES answer keeps the ones it shows.
_CHANGED = (*_VERDICT, Column("linked", Boolean))
_changed = _rows("changed", _CHANGED)
_UPDATE_VERDICTS = (
    update(verdicts)
    .where(verdicts.c.id == _changed.c.id)
    .values(
        {
            **{
                c.name: _value(_changed, c)
                for c in _VERDICT
                if c.name not in ("id", "issue_id", "channel", "intent")
            },
            "channel": case((_changed.c.linked, _changed.c.channel), else_=verdicts.c.channel),
            "intent": case((_changed.c.linked, _changed.c.intent), else_=verdicts.c.intent),
        }
    )
)


async def store_verdicts(
    session: AsyncSession, written: Sequence[Written], known: Mapping[uuid.UUID, Context]
) -> None:
    """Insert the new verdicts in one statement and update the changed ones in another."""
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for item in written:
        verdict = item.verdict
        context = None
        if item.reevaluated and verdict.issue_id is not None:
            context = known.get(verdict.issue_id)
        (inserted if item.new else updated).append(_verdict_columns(verdict, context))
    if inserted:
        await session.execute(_INSERT_VERDICTS, _params("new", _VERDICT, inserted))
    if updated:
        await session.execute(_UPDATE_VERDICTS, _params("changed", _CHANGED, updated))
