"""improvement's batch handlers and theme worker against a real database: a batch gives the
state that one event at a time gives, theme workers race without duplicates, and marking a
theme never waits for its evaluation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.improvement.adapters import repository as repo
from services.improvement.adapters.tables import followups, issues, outbox, proposals, theme_changes
from services.improvement.bootstrap import definition as improvement
from services.improvement.domain.themes import Thresholds
from services.improvement.handlers import make_subscriptions
from services.improvement.handlers.followups import move_followup
from services.improvement.handlers.themes import (
    evaluate_changed_themes,
    evaluate_theme,
    theme_worker,
)
from shared.contracts import (
    Analysis,
    CustomerRef,
    EventData,
    IssueAnalyzed,
    IssueReceived,
    SatisfactionEvaluated,
    Sentiment,
    new_event,
)
from shared.db import Database, Outbox, create_engine
from shared.messaging.consumer import record_in_inbox
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
HANDLERS = {s.type: s for s in make_subscriptions()}
T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)
LI_SI = CustomerRef(customer_id=uuid.UUID(int=1), name="李四")


def story(issue: uuid.UUID, other: uuid.UUID, intent: str = "delivery") -> list[EventData]:
    """Every event of two issues, with the surprises a batch must fold in order."""

    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    def analyzed(issue_id: uuid.UUID, minutes: int, need: str) -> IssueAnalyzed:
        return IssueAnalyzed(
            issue_id=issue_id,
            channel="chat",
            customer=LI_SI,
            text="…",
            analysis=Analysis(
                language="zh",
                need=need,
                intent=intent,
                urgency="normal",
                sentiment=Sentiment(label="negative", score=-0.5),
            ),
            analyzer_version="test",
            analyzed_at=at(minutes),
        )

    def verdict(issue_id: uuid.UUID, value: str, minutes: int) -> SatisfactionEvaluated:
        return SatisfactionEvaluated(
            issue_id=issue_id,
            customer=LI_SI,
            score=0.5,
            verdict=value,
            source="explicit",
            basis=f"rating at {minutes}",
            evaluated_at=at(minutes),
        )

    def received(issue_id: uuid.UUID) -> IssueReceived:
        return IssueReceived(
            issue_id=issue_id,
            channel="chat",
            external_id=str(issue_id),
            customer=LI_SI,
            text="…",
            received_at=T0,
        )

    return [
        verdict(other, "dissatisfied", 2),  # before anything else is known of it
        received(issue),
        analyzed(issue, 1, "更快的发货"),
        verdict(issue, "neutral", 2),
        verdict(issue, "dissatisfied", 3),  # two verdicts of one issue in one batch
        verdict(issue, "satisfied", 1),  # older, late: changes nothing
        analyzed(other, 1, "退款"),
        verdict(other, "satisfied", 4),  # resolves
        verdict(other, "neutral", 5),  # reopens
        received(other),
        analyzed(other, 6, "更快的发货"),  # a re-analysis: leaves need:退款
    ]


async def deliver(db: Database, batch: list[EventData]) -> None:
    """As the consumer runner: inbox, then each type's handler with its events, one commit."""
    events = [new_event("/test", data) for data in batch]
    async with db.unit_of_work() as uow:
        fresh = await record_in_inbox(uow, improvement.inbox, events)
        by_type: dict[str, list[EventData]] = {}
        for event, data in zip(events, batch, strict=True):
            if event.id in fresh:
                by_type.setdefault(data.TYPE, []).append(data)
        for event_type, items in by_type.items():
            await HANDLERS[event_type].handle(items, uow)


async def state_of(db: Database, issue_ids: list[uuid.UUID]) -> list[Any]:
    """What the issues and their follow-ups hold, named by position rather than by id."""
    name: Callable[[uuid.UUID], int] = issue_ids.index
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(select(issues).where(issues.c.issue_id.in_(issue_ids)))
        known = sorted((name(r.issue_id), *r[1:]) for r in rows)
        rows = await uow.session.execute(
            select(followups).where(followups.c.issue_id.in_(issue_ids))
        )
        follows = sorted(
            (name(r.issue_id), r.channel, r.need, r.intent, r.verdict, r.reason, r.status)
            for r in rows
        )
        required = await uow.session.scalar(
            select(func.count()).where(
                outbox.c.type == "kefu.improvement.followup_required",
                outbox.c.payload["subject"].astext.in_([str(i) for i in issue_ids]),
            )
        )
    return [known, follows, required]


async def test_a_batch_reaches_the_state_of_one_event_at_a_time(private_stack: Settings) -> None:
    db = await open_database(private_stack, improvement)
    one_by_one = [uuid.uuid4(), uuid.uuid4()]
    for data in story(*one_by_one):
        await deliver(db, [data])
    batched = [uuid.uuid4(), uuid.uuid4()]
    await deliver(db, story(*batched))
    expected = await state_of(db, one_by_one)
    assert await state_of(db, batched) == expected
    follows = expected[1]
    assert [(f[0], f[4], f[6]) for f in follows] == [
        (0, "dissatisfied", "open"),
        (1, "neutral", "open"),
    ]
    assert follows[1][2] == "更快的发货" and expected[2] == 2  # one follow-up each, ever
    async with db.unit_of_work() as uow:
        marked = set((await uow.session.execute(select(theme_changes.c.theme_key))).scalars())
    assert {"delivery", "更快的发货", "退款"} <= marked  # the theme an issue left is marked too
    await db.dispose()


async def test_two_theme_workers_racing_on_a_hot_theme_make_one_proposal(
    private_stack: Settings,
) -> None:
    dbs = [await open_database(private_stack, improvement) for _ in range(2)]
    for _ in range(6):
        for _ in range(5):  # a hot theme: every issue unhappy about the same thing
            issue = uuid.uuid4()
            events = story(issue, uuid.uuid4(), intent="billing")
            await deliver(dbs[0], [e for e in events if getattr(e, "issue_id", None) == issue])
        await asyncio.gather(*(evaluate_changed_themes(db, Thresholds()) for db in dbs))
    while await evaluate_changed_themes(dbs[1], Thresholds()):
        pass
    async with dbs[0].unit_of_work() as uow:
        raised = (
            await uow.session.execute(
                select(proposals.c.theme_key).where(proposals.c.theme_kind == "intent")
            )
        ).scalars()
        proposed = (
            await uow.session.execute(
                select(outbox.c.payload["data"]["theme"].astext).where(
                    outbox.c.type == "kefu.improvement.proposed"
                )
            )
        ).scalars()
        assert list(raised) == ["billing"]
        assert sorted(proposed).count("intent:billing") == 1
    for db in dbs:
        await db.dispose()


async def test_marking_a_theme_never_waits_for_its_evaluation(private_stack: Settings) -> None:
    db = await open_database(private_stack, improvement)
    theme = ("intent", "account")
    await deliver(db, story(uuid.uuid4(), uuid.uuid4(), intent="account"))
    async with db.unit_of_work() as evaluation:  # an evaluation in progress, holding the theme
        assert await repo.try_lock_theme(evaluation.session, theme)
        assert await repo.take_theme_changes(evaluation.session, theme)
        # New events of the theme are handled at once, and a second worker skips the theme.
        await asyncio.wait_for(
            deliver(db, story(uuid.uuid4(), uuid.uuid4(), intent="account")), timeout=5
        )
        assert not await asyncio.wait_for(evaluate_theme(db, theme, Thresholds()), timeout=5)
    # What arrived during the evaluation waits for the next round.
    assert await evaluate_theme(db, theme, Thresholds())
    await db.dispose()


async def test_the_theme_worker_outlives_a_database_outage(private_stack: Settings) -> None:
    down = Database(
        create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", timeout=1),
        Outbox(improvement.outbox, source="/kefu/improvement"),
    )
    worker = asyncio.create_task(theme_worker(Thresholds(), interval=0.1)(down))
    await asyncio.sleep(2)
    assert not worker.done()  # it logged, backed off and kept going
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    await down.dispose()
    # Against the database it has, it evaluates what is marked.
    db = await open_database(private_stack, improvement)
    await deliver(db, story(uuid.uuid4(), uuid.uuid4(), intent="technical"))
    worker = asyncio.create_task(theme_worker(Thresholds(), interval=0.1)(db))

    async def nothing_marked() -> bool:
        async with db.unit_of_work() as uow:
            return not await uow.session.scalar(select(func.count()).select_from(theme_changes))

    await wait_until(nothing_marked, what="the marks evaluated")
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    await db.dispose()


async def test_a_person_s_move_is_not_undone_by_a_batch_in_flight(
    private_stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch read the follow-up before a person moved it: the person waits for the batch,
    then moves what the batch wrote; nothing the person did is written over."""
    db = await open_database(private_stack, improvement)
    handlers = {s.type: s for s in make_subscriptions()}
    issue_id = uuid.uuid4()

    def analyzed(need: str, minutes: int) -> IssueAnalyzed:
        return IssueAnalyzed(
            issue_id=issue_id,
            channel="chat",
            customer=LI_SI,
            text="…",
            analysis=Analysis(
                language="zh",
                need=need,
                intent="delivery",
                urgency="normal",
                sentiment=Sentiment(label="negative", score=-0.5),
            ),
            analyzer_version="test",
            analyzed_at=T0 + timedelta(minutes=minutes),
        )

    unhappy = SatisfactionEvaluated(
        issue_id=issue_id,
        customer=LI_SI,
        score=0.5,
        verdict="neutral",
        source="explicit",
        basis="csat5=3",
        evaluated_at=T0 + timedelta(minutes=2),
    )
    for data in (analyzed("更快的响应速度", 1), unhappy):
        async with db.unit_of_work() as uow:
            await handlers[data.TYPE].handle([data], uow)
    async with db.unit_of_work() as uow:
        followup_id = await uow.session.scalar(
            select(followups.c.id).where(followups.c.issue_id == issue_id)
        )
    assert followup_id is not None

    read, go_on = asyncio.Event(), asyncio.Event()
    save = repo.save

    async def save_later(*args: Any, **kwargs: Any) -> None:
        read.set()
        await go_on.wait()
        await save(*args, **kwargs)

    async def reanalysis() -> None:
        async with db.unit_of_work() as uow:
            await handlers[IssueAnalyzed.TYPE].handle([analyzed("退款", 3)], uow)

    monkeypatch.setattr(repo, "save", save_later)
    batch = asyncio.create_task(reanalysis())
    await read.wait()  # the batch has read the follow-up as it was
    monkeypatch.setattr(repo, "save", save)

    async def person() -> None:
        async with db.unit_of_work() as uow:
            await move_followup(uow, followup_id, "contacted", by="agent", note="called")

    moved = asyncio.create_task(person())
    await asyncio.sleep(0.3)
    assert not moved.done(), "the person's move waits for the batch that holds the issue"
    go_on.set()
    await asyncio.gather(batch, moved)
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(followups).where(followups.c.id == followup_id))
        ).one()
    assert (row.status, row.note, row.need) == ("contacted", "called", "退款")
    await db.dispose()
