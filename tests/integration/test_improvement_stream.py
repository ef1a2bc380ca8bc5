"""A realistic stream through improvement: six weeks of issues, one theme going bad."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.improvement.adapters.tables import followups, outbox, proposals, theme_changes
from services.improvement.bootstrap import definition as improvement
from services.improvement.domain.themes import Thresholds
from services.improvement.handlers import make_subscriptions
from services.improvement.handlers.themes import evaluate_changed_themes, move_proposal
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
from shared.db import Database
from shared.errors import Conflict
from shared.messaging.consumer import record_in_inbox
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import isolated_stack

pytestmark = pytest.mark.asyncio(loop_scope="session")
HANDLERS = {s.type: s for s in make_subscriptions()}
START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 42
BAD_FROM = DAYS - 7  # the last week: delivery goes bad
# intent: (issues a day, share dissatisfied, share neutral) in normal times
THEMES = {
    "delivery": (6, 0.1, 0.1),
    "billing": (4, 0.15, 0.15),
    "account": (2, 0.3, 0.1),
    "praise": (3, 0.0, 0.0),
    "inquiry": (5, 0.05, 0.25),
}


@dataclass(frozen=True)
class Issue:
    issue_id: uuid.UUID
    intent: str
    at: datetime
    verdict: str | None


def stream(seed: int = 7) -> list[Issue]:
    rng = random.Random(seed)
    issues = []
    for day in range(DAYS):
        for intent, (per_day, dissatisfied, neutral) in THEMES.items():
            count = per_day
            if intent == "delivery" and day >= BAD_FROM:
                count, dissatisfied, neutral = per_day * 2, 0.65, 0.15
            for _ in range(count):
                roll = rng.random()
                verdict = (
                    "dissatisfied"
                    if roll < dissatisfied
                    else "neutral"
                    if roll < dissatisfied + neutral
                    else "satisfied"
                )
                at = START + timedelta(days=day, minutes=rng.randrange(24 * 60))
                issues.append(
                    Issue(
                        uuid.UUID(int=rng.getrandbits(128)),
                        intent,
                        at,
                        verdict if rng.random() < 0.8 else None,
                    )
                )
    return sorted(issues, key=lambda issue: issue.at)


def events(issues: list[Issue]) -> Iterator[EventData]:
    customer = CustomerRef(customer_id=uuid.UUID(int=1), name="Pat")
    for issue in issues:
        yield IssueReceived(
            issue_id=issue.issue_id,
            channel="email",
            external_id=str(issue.issue_id),
            customer=customer,
            text="...",
            received_at=issue.at,
        )
        yield IssueAnalyzed(
            issue_id=issue.issue_id,
            channel="email",
            customer=customer,
            text="...",
            analysis=Analysis(
                language="en",
                intent=issue.intent,
                urgency="normal",
                sentiment=Sentiment(label="neutral", score=0),
            ),
            analyzer_version="test",
            analyzed_at=issue.at + timedelta(seconds=1),
        )
        if issue.verdict:
            yield SatisfactionEvaluated(
                issue_id=issue.issue_id,
                customer=customer,
                verdict=issue.verdict,
                score={"satisfied": 1.0, "neutral": 0.5, "dissatisfied": 0.0}[issue.verdict],
                source="explicit",
                basis="rating",
                evaluated_at=issue.at + timedelta(hours=2),
            )


async def deliver(db: Database, batch: list[tuple[uuid.UUID, EventData]]) -> None:
    """What the consumer runner does with a batch: inbox rows, then each type's handler with
    the fresh events of that type, in one transaction."""
    events = [new_event("/test", data).model_copy(update={"id": eid}) for eid, data in batch]
    async with db.unit_of_work() as uow:
        fresh = await record_in_inbox(uow, improvement.inbox, events)
        handled: set[uuid.UUID] = set()
        by_type: dict[str, list[EventData]] = {}
        for event, (_, data) in zip(events, batch, strict=True):
            if event.id in fresh and event.id not in handled:
                handled.add(event.id)
                by_type.setdefault(data.TYPE, []).append(data)
        for event_type, items in by_type.items():
            await HANDLERS[event_type].handle(items, uow)


async def settle(db: Database) -> None:
    """The theme worker's rounds until no theme change is left."""
    while True:
        await evaluate_changed_themes(db, Thresholds())
        async with db.unit_of_work() as uow:
            if not await uow.session.scalar(select(theme_changes.c.id).limit(1)):
                return


async def deliver_in_batches(
    db: Database,
    stamped: list[tuple[uuid.UUID, EventData]],
    rng: random.Random,
    evaluate_every: float = 1.0,
) -> None:
    """Batches of varying size; the theme worker runs after a share of them, and at the end."""
    position = 0
    while position < len(stamped):
        size = rng.choice((1, 2, 7, 32, 100))
        await deliver(db, stamped[position : position + size])
        position += size
        if rng.random() < evaluate_every:
            await evaluate_changed_themes(db, Thresholds())
    await settle(db)


async def final_state(db: Database) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        props = (await uow.session.execute(select(proposals))).all()
        follows = (await uow.session.execute(select(followups))).all()
        published = (
            await uow.session.execute(
                select(outbox.c.type).where(outbox.c.type.like("kefu.improvement.%"))
            )
        ).scalars()
        kinds = list(published)
    return {
        "proposals": sorted((p.theme_kind, p.theme_key, p.status, str(p.evidence)) for p in props),
        "followups": sorted((str(f.issue_id), f.status, f.verdict, f.intent) for f in follows),
        "proposed_events": kinds.count("kefu.improvement.proposed"),
        "updated_events": kinds.count("kefu.improvement.updated"),
    }


@pytest.fixture(scope="module")
def shuffled_stack() -> Iterator[Settings]:
    with isolated_stack() as settings:
        yield settings


async def test_one_theme_going_bad_gets_one_proposal_with_its_evidence(
    private_stack: Settings,
) -> None:
    db = await open_database(private_stack, improvement)
    issues = stream()
    await deliver_in_batches(
        db, [(uuid.uuid4(), data) for data in events(issues)], random.Random(5)
    )
    state = await final_state(db)
    async with db.unit_of_work() as uow:
        rows = (await uow.session.execute(select(proposals))).all()
    assert [(row.theme_kind, row.theme_key) for row in rows] == [("intent", "delivery")]
    assert state["proposed_events"] == 1 and state["updated_events"] >= 1  # updated, not repeated
    evidence = rows[0].evidence
    end = max(i.at for i in issues if i.intent == "delivery")
    window = [i for i in issues if i.intent == "delivery" and end - timedelta(days=7) < i.at <= end]
    rated = [i for i in window if i.verdict]
    unhappy = [i for i in rated if i.verdict == "dissatisfied"]
    assert evidence["issues"] == len(window)
    assert evidence["rated"] == len(rated)
    assert evidence["dissatisfied"] == len(unhappy)
    assert evidence["csat"] == round(sum(i.verdict == "satisfied" for i in rated) / len(rated), 3)
    assert evidence["trend"] == pytest.approx(2.0, abs=0.35)  # twice the usual volume
    assert {uuid.UUID(s) for s in evidence["sample_issue_ids"]} <= {i.issue_id for i in unhappy}
    assert len(evidence["sample_issue_ids"]) == 5
    assert evidence["period_end"].startswith(end.isoformat()[:19])
    assert rows[0].priority == pytest.approx(len(window) * len(unhappy) / len(rated), rel=0.01)
    # Every customer who was not satisfied has exactly one follow-up.
    not_satisfied = {str(i.issue_id) for i in issues if i.verdict in ("neutral", "dissatisfied")}
    assert {f[0] for f in state["followups"]} == not_satisfied
    await db.dispose()


async def test_redelivered_and_out_of_order_events_reach_the_same_state(
    private_stack: Settings, shuffled_stack: Settings
) -> None:
    in_order = await open_database(private_stack, improvement)
    expected = await final_state(in_order)  # left by the test above
    await in_order.dispose()
    db = await open_database(shuffled_stack, improvement)
    stamped = [(uuid.uuid4(), data) for data in events(stream())]
    rng = random.Random(11)
    rng.shuffle(stamped)
    redelivered = stamped + rng.sample(stamped, len(stamped) // 5)  # a fifth arrive twice
    await deliver_in_batches(db, redelivered, rng, evaluate_every=0.3)
    state = await final_state(db)
    assert state["proposals"] == expected["proposals"]
    assert state["followups"] == expected["followups"]
    assert state["proposed_events"] == 1
    await db.dispose()


async def test_people_move_a_proposal_and_each_move_is_an_event(private_stack: Settings) -> None:
    db = await open_database(private_stack, improvement)
    async with db.unit_of_work() as uow:
        proposal_id = (await uow.session.execute(select(proposals.c.id))).scalar_one()
    for status in ("accepted", "in_progress", "done"):
        async with db.unit_of_work() as uow:
            row = await move_proposal(uow, proposal_id, status, by="product-lead", note=status)
        assert row.status == status
    with pytest.raises(Conflict):
        async with db.unit_of_work() as uow:
            await move_proposal(uow, proposal_id, "open", by="product-lead", note=None)
    async with db.unit_of_work() as uow:
        moves = (
            (
                await uow.session.execute(
                    select(outbox.c.payload["data"])
                    .where(
                        outbox.c.type == "kefu.improvement.updated",
                        outbox.c.payload["data"]["change"].astext == "status",
                    )
                    .order_by(outbox.c.created_at)
                )
            )
            .scalars()
            .all()
        )
    assert [(m["previous_status"], m["status"], m["by"]) for m in moves] == [
        ("open", "accepted", "product-lead"),
        ("accepted", "in_progress", "product-lead"),
        ("in_progress", "done", "product-lead"),
    ]
    # Closed on this window's evidence: more of the same evidence does not raise it again.
    late = Issue(
        uuid.uuid4(), "delivery", max(i.at for i in stream()) + timedelta(hours=1), "dissatisfied"
    )
    await deliver_in_batches(
        db, [(uuid.uuid4(), data) for data in events([late])], random.Random(1)
    )
    async with db.unit_of_work() as uow:
        assert len((await uow.session.execute(select(proposals))).all()) == 1
    await db.dispose()
