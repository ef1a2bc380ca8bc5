"""improvement's SQL: set-based reads and writes for batches, the theme queue, the read models."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    TableValuedAlias,
    Text,
    Uuid,
    any_,
    bindparam,
    cast,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.improvement.adapters.tables import followups, issues, proposals, theme_changes
from services.improvement.domain.followups import ACTIVE_PROPOSAL, Followup, Issue, Theme
from services.improvement.domain.themes import ThemeKind, ThemeStats, Thresholds
from shared.db import lock_for_transaction
from shared.paging import PageRequest, after

_THEME_COLUMN = {"intent": issues.c.intent, "need": issues.c.need_key}
_ISSUE_FIELDS = [f.name for f in fields(Issue)]
_FOLLOWUP_FIELDS = [f.name for f in fields(Followup)]
# What a follow-up's life changes; id, issue, customer, summary and created_at never change.
_FOLLOWUP_CHANGES = (
    "channel",
    "need",
    "intent",
    "verdict",
    "reason",
    "status",
    "note",
    "updated_at",
)


# ------------------------------------------------------------------ issues and follow-ups


async def lock_issues(session: AsyncSession, issue_ids: Iterable[uuid.UUID]) -> None:
    """Until commit, no other batch (here or in a replica) reads or writes these issues."""
    await lock_for_transaction(session, *(f"issue:{issue_id}" for issue_id in issue_ids))


_ISSUES_AND_FOLLOWUPS = (
    select(issues, *(c.label(f"followup_{c.name}") for c in followups.c))
    .select_from(issues.outerjoin(followups, followups.c.issue_id == issues.c.issue_id))
    .where(issues.c.issue_id == any_(bindparam("ids", type_=ARRAY(Uuid))))
)


async def issues_and_followups(
    session: AsyncSession, issue_ids: Collection[uuid.UUID]
) -> tuple[dict[uuid.UUID, Issue], dict[uuid.UUID, Followup]]:
    """The issues and their follow-ups, in one statement (a follow-up's issue row is always
    written first, so the join finds every follow-up of these issues)."""
    rows = await session.execute(_ISSUES_AND_FOLLOWUPS, {"ids": list(issue_ids)})
    found: dict[uuid.UUID, Issue] = {}
    their: dict[uuid.UUID, Followup] = {}
    for row in rows:
        values_ = row._mapping
        found[row.issue_id] = Issue(**{name: values_[name] for name in _ISSUE_FIELDS})
        if row.followup_id is not None:
            their[row.issue_id] = Followup(
                **{name: values_[f"followup_{name}"] for name in _FOLLOWUP_FIELDS}
            )
    return found, their


def _relation(table: Table, name: str, names: Sequence[str]) -> TableValuedAlias:
    """Rows given as one array per column (``_arrays``), as a relation: ``unnest``."""
    arrays = [
        bindparam(f"{name}_{column}", type_=ARRAY(_carried(table.c[column].type)))
        for column in names
    ]
    return func.unnest(*arrays).table_valued(*names).render_derived(name=name)


def _carried(type_: Any) -> Any:
    return Text() if isinstance(type_, JSONB) else type_  # JSON travels as text


def _arrays(
    table: Table, name: str, names: Sequence[str], records: Collection[Any], key: str
) -> dict[str, list[Any]]:
    """The values of ``_relation(table, name, names)`` for ``records`` (dataclasses)."""
    rows = sorted((vars(record) for record in records), key=lambda row: row[key])
    params = {}
    for column in names:
        items = [row[column] for row in rows]
        if isinstance(table.c[column].type, JSONB):
            items = [None if item is None else json.dumps(item) for item in items]
        params[f"{name}_{column}"] = items
    return params


def _select_all(table: Table, rows: TableValuedAlias) -> Select[Any]:
    return select(
        *(
            cast(rows.c[c.name], JSONB) if isinstance(c.type, JSONB) else rows.c[c.name]
            for c in table.c
        )
    )


def _save_statement() -> Select[Any]:
    issue_rows = _relation(issues, "issue_rows", _ISSUE_FIELDS)
    upsert_issues = insert(issues).from_select(_ISSUE_FIELDS, _select_all(issues, issue_rows))
    upsert_issues = upsert_issues.on_conflict_do_update(
        index_elements=[issues.c.issue_id],
        set_={name: upsert_issues.excluded[name] for name in _ISSUE_FIELDS[1:]},
    )
    new_rows = _relation(followups, "new_followups", _FOLLOWUP_FIELDS)
    changed = _relation(followups, "changed_followups", _FOLLOWUP_FIELDS)
    theme_rows = (
        func.unnest(
            bindparam("theme_kinds", type_=ARRAY(Text)), bindparam("theme_keys", type_=ARRAY(Text))
        )
        .table_valued("kind", "key")
        .render_derived(name="theme_rows")
    )
    return (
        select(literal(1))
        .add_cte(upsert_issues.cte("upserted_issues"))
        .add_cte(
            insert(followups)
            .from_select(_FOLLOWUP_FIELDS, _select_all(followups, new_rows))
            .cte("inserted_followups")
        )
        .add_cte(
            update(followups)
            .where(followups.c.id == changed.c.id)
            .values({name: changed.c[name] for name in _FOLLOWUP_CHANGES})
            .cte("updated_followups")
        )
        .add_cte(
            insert(theme_changes)
            .from_select(["theme_kind", "theme_key"], select(theme_rows.c.kind, theme_rows.c.key))
            .cte("marked_themes")
        )
    )


# Built once: its cache key is computed once, and each batch only brings the values.
_SAVE = _save_statement()


async def save(
    session: AsyncSession,
    *,
    changed_issues: Collection[Issue],
    opened: Collection[Followup],
    changed_followups: Collection[Followup],
    themes: Collection[Theme],
) -> None:
    """A batch's writes in one statement, whatever their number: the issues (upserted), the
    follow-ups opened and changed, and the themes it changed: appended to ``theme_changes``
    (no conflicts, so no message waits for the theme worker).

    The caller holds the issues' locks and folded every event into the rows it read (older
    analyses and verdicts already set aside), so each row written is final. Each set of rows
    travels as one array per column, so the statement's text and plan never change."""
    marked = sorted(themes)
    await session.execute(
        _SAVE,
        {
            **_arrays(issues, "issue_rows", _ISSUE_FIELDS, changed_issues, "issue_id"),
            **_arrays(followups, "new_followups", _FOLLOWUP_FIELDS, opened, "id"),
            **_arrays(followups, "changed_followups", _FOLLOWUP_FIELDS, changed_followups, "id"),
            "theme_kinds": [kind for kind, _ in marked],
            "theme_keys": [key for _, key in marked],
        },
    )


async def followup_for_update(session: AsyncSession, followup_id: uuid.UUID) -> Followup | None:
    """The follow-up, with its issue locked as a batch locks it (then the row), so that a
    batch that read it before cannot write its older copy back over this change."""
    issue_id = await session.scalar(
        select(followups.c.issue_id).where(followups.c.id == followup_id)
    )
    if issue_id is not None:
        await lock_issues(session, [issue_id])
    row = (
        await session.execute(
            select(followups).where(followups.c.id == followup_id).with_for_update()
        )
    ).first()
    return Followup(**row._asdict()) if row is not None else None


async def followup_page(
    session: AsyncSession,
    *,
    status: str | None,
    issue_id: uuid.UUID | None,
    intent: str | None,
    page: PageRequest,
    channel: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[int | None, list[Followup]]:
    """Newest first; up to ``page.limit + 1`` rows (the extra one says more follow)."""
    conditions = _present(
        followups.c.status == status if status else None,
        followups.c.issue_id == issue_id if issue_id else None,
        followups.c.intent == intent if intent else None,
        followups.c.channel == channel if channel else None,
        followups.c.created_at >= created_after if created_after else None,
        followups.c.created_at < created_before if created_before else None,
    )
    order = [(followups.c.created_at, True), (followups.c.id, True)]
    total, rows = await _page(session, followups, conditions, order, page)
    return total, [Followup(**row._asdict()) for row in rows]


# ------------------------------------------------------------------ themes


async def changed_themes(session: AsyncSession, limit: int) -> list[Theme]:
    """The themes with changes waiting, the longest-waiting first."""
    rows = await session.execute(
        select(theme_changes.c.theme_kind, theme_changes.c.theme_key)
        .group_by(theme_changes.c.theme_kind, theme_changes.c.theme_key)
        .order_by(func.min(theme_changes.c.id))
        .limit(limit)
    )
    return [(row.theme_kind, row.theme_key) for row in rows]


async def try_lock_theme(session: AsyncSession, theme: Theme) -> bool:
    """Whether this transaction may evaluate the theme: never waits; released at commit."""
    return bool(
        await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": "theme:{}:{}".format(*theme)},
        )
    )


async def take_theme_changes(session: AsyncSession, theme: Theme) -> int:
    """Remove the theme's waiting changes (with the transaction: kept if it rolls back).

    Everything committed before this statement is seen by the statistics read after it (read
    committed takes a new snapshot per statement); a change committed later stays queued for
    the next round."""
    kind, key = theme
    deleted = await session.execute(
        theme_changes.delete()
        .where(theme_changes.c.theme_kind == kind, theme_changes.c.theme_key == key)
        .returning(theme_changes.c.id)
    )
    return len(deleted.all())


async def theme_stats(
    session: AsyncSession, kind: ThemeKind, key: str, thresholds: Thresholds
) -> ThemeStats | None:
    """Counts over the window ending at the theme's latest issue, and the baseline before it."""
    column_ = _THEME_COLUMN[kind]
    first, end = (
        await session.execute(
            select(func.min(issues.c.received_at), func.max(issues.c.received_at)).where(
                column_ == key
            )
        )
    ).one()
    if end is None:
        return None
    start = end - thresholds.window
    baseline_start = start - thresholds.baseline
    in_window = issues.c.received_at > start
    in_baseline = issues.c.received_at <= start
    counts = (
        await session.execute(
            select(
                func.count().filter(in_window),
                func.count(issues.c.verdict).filter(in_window),
                func.count().filter(in_window, issues.c.verdict == "satisfied"),
                func.count().filter(in_window, issues.c.verdict == "dissatisfied"),
                func.count().filter(in_baseline),
                func.count(issues.c.verdict).filter(in_baseline),
                func.count().filter(in_baseline, issues.c.verdict == "satisfied"),
            ).where(
                column_ == key, issues.c.received_at > baseline_start, issues.c.received_at <= end
            )
        )
    ).one()
    issues_, rated, satisfied, dissatisfied, baseline, baseline_rated, baseline_sat = (
        int(n) for n in counts
    )
    samples = (
        (
            await session.execute(
                select(issues.c.issue_id)
                .where(
                    column_ == key,
                    in_window,
                    issues.c.received_at <= end,
                    issues.c.verdict == "dissatisfied",
                )
                .order_by(issues.c.received_at.desc(), issues.c.issue_id)
                .limit(5)
            )
        )
        .scalars()
        .all()
    )
    return ThemeStats(
        period_start=start,
        period_end=end,
        issues=issues_,
        rated=rated,
        satisfied=satisfied,
        dissatisfied=dissatisfied,
        baseline_issues=baseline,
        baseline_rated=baseline_rated,
        baseline_satisfied=baseline_sat,
        first_issue_at=first,
        sample_issue_ids=list(samples),
    )


# ------------------------------------------------------------------ proposals


async def active_proposal(session: AsyncSession, kind: ThemeKind, key: str) -> Row[Any] | None:
    """The theme's open proposal, locked: a person's move of it waits, or is seen."""
    return (
        await session.execute(
            select(proposals)
            .where(
                proposals.c.theme_kind == kind,
                proposals.c.theme_key == key,
                proposals.c.status.in_(ACTIVE_PROPOSAL),
            )
            .with_for_update()
        )
    ).first()


async def closed_since(session: AsyncSession, kind: ThemeKind, key: str, since: datetime) -> bool:
    """Whether people closed a proposal for this theme on evidence from the current window."""
    found = await session.scalar(
        select(func.count()).where(
            proposals.c.theme_kind == kind,
            proposals.c.theme_key == key,
            proposals.c.status.not_in(ACTIVE_PROPOSAL),
            proposals.c.evidence["period_end"].astext.cast(proposals.c.opened_at.type) > since,
        )
    )
    return bool(found)


async def insert_proposal(session: AsyncSession, **values_: Any) -> None:
    await session.execute(proposals.insert().values(**values_))


async def update_proposal(
    session: AsyncSession, proposal_id: uuid.UUID, **values_: Any
) -> Row[Any]:
    row: Row[Any] = (
        await session.execute(
            proposals.update()
            .where(proposals.c.id == proposal_id)
            .values(**values_)
            .returning(proposals)
        )
    ).one()
    return row


async def proposal_for_update(session: AsyncSession, proposal_id: uuid.UUID) -> Row[Any] | None:
    return (
        await session.execute(
            select(proposals).where(proposals.c.id == proposal_id).with_for_update()
        )
    ).first()


async def proposal_page(
    session: AsyncSession, *, status: str | None, theme_kind: str | None, page: PageRequest
) -> tuple[int | None, list[Row[Any]]]:
    """Highest priority first, then the oldest; up to ``page.limit + 1`` rows."""
    conditions = _present(
        proposals.c.status == status if status else None,
        proposals.c.theme_kind == theme_kind if theme_kind else None,
    )
    order = [(proposals.c.priority, True), (proposals.c.opened_at, False), (proposals.c.id, False)]
    return await _page(session, proposals, conditions, order, page)


# ------------------------------------------------------------------ paging


def _present(*conditions: ColumnElement[bool] | None) -> list[ColumnElement[bool]]:
    return [condition for condition in conditions if condition is not None]


async def _page(
    session: AsyncSession,
    table: Table,
    conditions: list[ColumnElement[bool]],
    order: Sequence[tuple[ColumnElement[Any], bool]],
    page: PageRequest,
) -> tuple[int | None, list[Row[Any]]]:
    """A page by its cursor (or by the deprecated offset); the count only when asked for."""
    total = None
    if page.with_total:
        total = await session.scalar(select(func.count()).select_from(table).where(*conditions))
    columns = [column for column, _ in order]
    statement = select(table).where(*conditions)
    if page.key is not None:
        statement = statement.where(
            after(columns, page.key, descending=[down for _, down in order])
        )
    statement = statement.order_by(*(c.desc() if down else c.asc() for c, down in order))
    rows = await session.execute(statement.limit(page.limit + 1).offset(page.offset or 0))
    return total, list(rows)
