"""feedback's verdicts on the real database: precedence, replacement, early feedback, the report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import select

from services.feedback.adapters.reports import counts_by_group
from services.feedback.adapters.tables import outbox, verdicts
from services.feedback.bootstrap import definition as feedback_service
from services.feedback.domain.reports import summarise
from services.feedback.handlers import subscriptions
from shared.contracts import (
    Analysis,
    CustomerRef,
    EventData,
    FeedbackSubmitted,
    IssueAnalyzed,
    IssueReceived,
    Rating,
    Sentiment,
)
from shared.db import Database
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
handlers = {s.type: s for s in subscriptions}
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
LI_SI = CustomerRef(customer_id=uuid.uuid4(), name="李四")


async def deliver(db: Database, data: EventData) -> None:
    async with db.unit_of_work() as uow:
        await handlers[data.TYPE].handle([data], uow)


def rating(scale: str, value: Any) -> Rating:
    return TypeAdapter(Rating).validate_python({"scale": scale, "value": value})


def feedback(
    issue_id: uuid.UUID,
    at: datetime,
    *,
    scale: str | None = None,
    value: Any = None,
    comment: str | None = None,
) -> FeedbackSubmitted:
    return FeedbackSubmitted(
        feedback_id=uuid.uuid4(),
        issue_id=issue_id,
        customer=LI_SI,
        rating=rating(scale, value) if scale else None,
        comment=comment,
        submitted_at=at,
    )


def received(issue_id: uuid.UUID, text: str, channel: str = "chat") -> IssueReceived:
    return IssueReceived(
        issue_id=issue_id,
        channel=channel,
        external_id=str(issue_id),
        customer=LI_SI,
        text=text,
        received_at=T0,
    )


def analyzed(issue_id: uuid.UUID, intent: str, channel: str = "chat") -> IssueAnalyzed:
    return IssueAnalyzed(
        issue_id=issue_id,
        channel=channel,
        customer=LI_SI,
        text="x",
        analyzer_version="t",
        analysis=Analysis(
            language="zh",
            intent=intent,
            urgency="normal",
            sentiment=Sentiment(label="neutral", score=0),
        ),
        analyzed_at=T0,
    )


async def published(db: Database, issue_id: uuid.UUID) -> list[dict[str, Any]]:
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(outbox.c.payload)
            .where(outbox.c.payload["subject"].astext == str(issue_id))
            .order_by(outbox.c.created_at)
        )
        return [row[0]["data"] for row in rows]


async def test_one_verdict_per_issue_with_precedence_and_replacement(
    private_stack: Settings,
) -> None:
    db = await open_database(private_stack, feedback_service)
    issue_id = uuid.uuid4()
    await deliver(db, received(issue_id, "满意度为中"))  # text: neutral
    await deliver(db, feedback(issue_id, T0 + timedelta(hours=1), scale="csat5", value=2))
    await deliver(db, feedback(issue_id, T0 + timedelta(hours=2), comment="非常满意"))  # text loses
    await deliver(db, feedback(issue_id, T0 + timedelta(hours=3), scale="csat5", value=2))  # same
    await deliver(
        db, feedback(issue_id, T0 + timedelta(minutes=30), scale="csat5", value=5)
    )  # older
    await deliver(db, feedback(issue_id, T0 + timedelta(hours=4), scale="nps10", value=10))
    events = await published(db, issue_id)
    assert [(e["verdict"], e["source"]) for e in events] == [
        ("neutral", "implicit"),
        ("dissatisfied", "explicit"),
        ("satisfied", "explicit"),
    ]
    assert events[0]["replaces"] is None
    assert events[1]["replaces"]["verdict"] == "neutral"
    assert events[2]["replaces"] == {
        "verdict": "dissatisfied",
        "score": 0.25,
        "source": "explicit",
        "basis": "rating csat5=2",
    }
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
        ).one()
    assert (row.verdict, row.nps, row.channel) == ("satisfied", 10, "chat")
    await db.dispose()


async def test_early_feedback_is_kept_and_linked_when_the_issue_arrives(
    private_stack: Settings,
) -> None:
    db = await open_database(private_stack, feedback_service)
    issue_id = uuid.uuid4()
    await deliver(db, feedback(issue_id, T0, scale="ces7", value=2))
    await deliver(db, analyzed(issue_id, "delivery", "email"))
    await deliver(db, received(issue_id, "我的快递还没到", channel="email"))
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
        ).one()
    assert (row.verdict, row.ces, row.channel, row.intent) == (
        "dissatisfied",
        2,
        "email",
        "delivery",
    )
    assert len(await published(db, issue_id)) == 1  # the issue's text stated nothing more
    await db.dispose()


async def test_summary_arithmetic_against_hand_computed_values(private_stack: Settings) -> None:
    db = await open_database(private_stack, feedback_service)
    day1, day2 = datetime(2025, 5, 1, 9, tzinfo=UTC), datetime(2025, 5, 2, 23, 30, tzinfo=UTC)
    plan = [  # channel, intent, when, rating
        ("email", "refund", day1, ("csat5", 5)),
        ("email", "refund", day1, ("nps10", 9)),
        ("email", "delivery", day2, ("nps10", 6)),
        ("chat", "delivery", day2, ("ces7", 6)),
        ("chat", "delivery", day2, ("csat5", 3)),
        ("chat", None, day2, ("ces7", 2)),
    ]
    for channel, intent, when, (scale, value) in plan:
        issue_id = uuid.uuid4()
        await deliver(db, received(issue_id, "hello", channel=channel))
        if intent:
            await deliver(db, analyzed(issue_id, intent, channel))
        await deliver(db, feedback(issue_id, when, scale=scale, value=value))
    async with db.unit_of_work() as uow:
        since, until = datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 5, 3, tzinfo=UTC)
        by_channel = await counts_by_group(uow.session, since, until, "channel")
        by_intent = await counts_by_group(uow.session, since, until, "intent")
        by_day = await counts_by_group(uow.session, since, until, "day")
        by_shanghai_day = await counts_by_group(uow.session, since, until, "day", "Asia/Shanghai")
        only_day1 = await counts_by_group(
            uow.session, since, datetime(2025, 5, 2, tzinfo=UTC), "none"
        )
    # email: csat5 5 (sat), nps 9 (sat, promoter), nps 6 (dis, detractor) -> CSAT 66.7, NPS 0
    email = summarise(by_channel["email"])
    assert email["rated"] == 3 and email["csat_percent"] == 66.7 and email["nps"]["score"] == 0.0
    # chat: ces 6 (sat), csat5 3 (neutral), ces 2 (dis) -> CSAT 33.3, CES (6+2)/2 = 4.0
    chat = summarise(by_channel["chat"])
    assert chat["verdicts"] == {"satisfied": 1, "neutral": 1, "dissatisfied": 1}
    assert chat["csat_percent"] == 33.3 and chat["ces"] == {"average": 4.0, "answers": 2}
    assert {key: c.rated for key, c in by_intent.items()} == {
        "refund": 2,
        "delivery": 3,
        "unknown": 1,
    }
    assert {key: c.rated for key, c in by_day.items()} == {"2025-05-01": 2, "2025-05-02": 4}
    # 23:30 UTC on 2 May is 07:30 on 3 May in Shanghai.
    assert {key: c.rated for key, c in by_shanghai_day.items()} == {
        "2025-05-01": 2,
        "2025-05-03": 4,
    }
    assert summarise(only_day1["all"])["csat_percent"] == 100.0
    await db.dispose()


async def test_an_older_analysis_arriving_late_changes_nothing(private_stack: Settings) -> None:
    db = await open_database(private_stack, feedback_service)
    issue_id = uuid.uuid4()
    newer = analyzed(issue_id, "refund").model_copy(update={"analyzed_at": T0 + timedelta(days=1)})
    await deliver(db, newer)
    await deliver(db, analyzed(issue_id, "delivery"))  # analysed at T0: older
    await deliver(db, feedback(issue_id, T0, scale="csat5", value=1))
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
        ).one()
    assert row.intent == "refund"
    await db.dispose()
