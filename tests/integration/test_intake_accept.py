"""intake's one-statement acceptance on the real database: batches, races, events, busy pool."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from services.intake import handlers
from services.intake.adapters.accept import IssueStore, open_issue_store
from services.intake.adapters.tables import customers, feedback, issues, outbox
from services.intake.bootstrap import definition as intake
from services.intake.domain.commands import SubmitFeedback, SubmitIssue
from shared.contracts import (
    CustomerRef,
    FeedbackSubmitted,
    IssueReceived,
    decode_event,
)
from shared.db import DatabaseBusy, asyncpg_dsn, create_pool, pooled_connection
from shared.errors import Conflict, InvalidInput
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
SOURCE = "/kefu/intake"


def command(external_id: str, **change: Any) -> SubmitIssue:
    body: dict[str, Any] = {
        "channel": "chat",
        "external_id": external_id,
        "customer": {"name": "李四", "phone": "13900139000", "email": "lisi@example.com"},
        "text": "满意度为中",
        "subject": "回访",
        "occurred_at": "2026-11-30T08:00:00+08:00",
        "language": "zh",
        "metadata": {"order": 1234, "big": 2**70},
    }
    body.update(change)
    return SubmitIssue.model_validate(body)


async def accept(store: IssueStore, *cmds: SubmitIssue) -> list[handlers.Accepted | Exception]:
    return list(await handlers.submit_issues(cmds, store, default_region="CN", source=SOURCE))


async def events_of(settings: Settings, issue_id: uuid.UUID) -> list[bytes]:
    """Outbox payloads as the relay publishes them (the stored JSON, as is)."""
    db = await open_database(settings, intake)
    async with db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                select(outbox.c.payload)
                .where(outbox.c.payload["subject"].astext == str(issue_id))
                .order_by(outbox.c.created_at)
            )
        ).all()
    await db.dispose()
    return [json.dumps(row.payload).encode() for row in rows]


async def test_a_batch_answers_each_item_and_stores_each_key_once(
    private_stack: Settings,
) -> None:
    key = f"batch-{uuid.uuid4()}"
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        first, invalid, again, changed, other = await accept(
            store,
            command(key),
            command(f"{key}-bad", customer={"phone": "12345"}),
            command(key),
            command(key, text="另一条消息"),
            command(f"{key}-other"),
        )
        assert isinstance(first, handlers.Accepted) and not first.duplicate
        assert isinstance(invalid, InvalidInput) and invalid.field == "customer.phone"
        assert isinstance(again, handlers.Accepted) and again.duplicate and again.id == first.id
        assert isinstance(changed, Conflict) and changed.field == "external_id"
        assert isinstance(other, handlers.Accepted) and other.id != first.id
        # The whole batch again: every valid item is a duplicate now, nothing is stored twice.
        replay = await accept(store, command(key), command(f"{key}-other"))
        assert [r.duplicate for r in replay if isinstance(r, handlers.Accepted)] == [True, True]
    assert len(await events_of(private_stack, first.id)) == 1
    assert len(await events_of(private_stack, other.id)) == 1


async def test_concurrent_bodies_under_one_key_one_wins_the_other_changes_nothing(
    private_stack: Settings,
) -> None:
    key = f"race-{uuid.uuid4()}"
    a = command(key, customer={"email": f"a-{key}@example.com"})
    b = command(key, text="不同的内容", customer={"email": f"b-{key}@example.com"})
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        answers = await asyncio.gather(*(accept(store, cmd) for cmd in [a, b] * 6))
    flat = [answer for [answer] in answers]
    accepted = [x for x in flat if isinstance(x, handlers.Accepted)]
    conflicts = [x for x in flat if isinstance(x, Conflict)]
    assert len(accepted) + len(conflicts) == 12
    assert len({x.id for x in accepted}) == 1
    assert sorted(x.duplicate for x in accepted) == [False] + [True] * (len(accepted) - 1)
    assert len(conflicts) == 6  # every request with the losing body
    db = await open_database(private_stack, intake)
    async with db.unit_of_work() as uow:
        emails = set(
            (
                await uow.session.scalars(
                    select(customers.c.email).where(customers.c.email.like(f"%-{key}@%"))
                )
            ).all()
        )
    await db.dispose()
    assert len(emails) == 1, "the losing body created no customer"
    assert len(await events_of(private_stack, accepted[0].id)) == 1


async def test_the_events_are_what_the_contract_says(private_stack: Settings) -> None:
    key = f"event-{uuid.uuid4()}"
    cmd = command(key)
    db = await open_database(private_stack, intake)
    # Feedback that names the issue before it arrives, as the old path handled it.
    early = SubmitFeedback.model_validate(
        {
            "issue": {"channel": "chat", "external_id": key},
            "rating": {"scale": "csat5", "value": 2},
            "comment": "不太满意",
        }
    )
    async with db.unit_of_work() as uow:
        pending = await handlers.submit_feedback(early, uow, default_region="CN")
    assert pending.pending_issue
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        [accepted] = await accept(store, cmd)
    assert isinstance(accepted, handlers.Accepted)

    async with db.unit_of_work() as uow:
        issue = (await uow.session.execute(select(issues).where(issues.c.id == accepted.id))).one()
        customer = (
            await uow.session.execute(select(customers).where(customers.c.id == issue.customer_id))
        ).one()
        linked = (
            await uow.session.execute(select(feedback).where(feedback.c.id == pending.id))
        ).one()
    await db.dispose()
    assert linked.issue_id == accepted.id and linked.customer_id == customer.id
    ref = CustomerRef(
        customer_id=customer.id,
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        external_id=customer.external_id,
    )
    assert (ref.name, ref.email, ref.phone) == ("李四", "lisi@example.com", "+8613900139000")

    received, submitted = [
        decode_event(body) for body in await events_of(private_stack, accepted.id)
    ]
    envelope, data = received
    assert envelope.type == "kefu.issue.received" and envelope.source == SOURCE
    assert envelope.subject == str(accepted.id)
    # What the old path emitted: IssueReceived from the command, the matched customer filled in.
    expected = IssueReceived(
        issue_id=accepted.id,
        channel=cmd.channel,
        external_id=cmd.external_id,
        customer=ref,
        subject=cmd.subject,
        text=cmd.text,
        language=cmd.language,
        metadata=cmd.metadata,
        occurred_at=cmd.occurred_at,
        received_at=issue.received_at,
    )
    assert data == expected
    assert envelope.data == expected.model_dump(mode="json")

    envelope, data = submitted
    assert envelope.type == "kefu.feedback.submitted" and envelope.source == SOURCE
    assert envelope.subject == str(accepted.id)
    expected_feedback = FeedbackSubmitted(
        feedback_id=pending.id,
        issue_id=accepted.id,
        customer=ref,
        rating=early.rating,
        comment=early.comment,
        submitted_at=linked.submitted_at,
    )
    assert data == expected_feedback
    assert envelope.data == expected_feedback.model_dump(mode="json")
    assert set(envelope.model_dump()) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "data",
        "traceparent",
    }
    assert envelope.traceparent is None  # tracing is off here


async def test_a_pool_whose_connections_stay_busy_refuses_as_busy(
    private_stack: Settings,
) -> None:
    pool = await create_pool(
        private_stack.service_database_url("intake"), size=1, connect_timeout=5
    )
    try:
        async with pooled_connection(pool, wait=1) as held:
            with pytest.raises(DatabaseBusy):
                async with pooled_connection(pool, wait=0.1):
                    pass
            assert await held.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_database_that_cannot_be_reached_is_not_busy() -> None:
    url = "postgresql+asyncpg://kefu_intake@127.0.0.1:1/kefu"
    pool = await create_pool(url, size=1, connect_timeout=1)
    try:
        with pytest.raises(OSError):
            async with pooled_connection(pool, wait=1):
                pass
    finally:
        await pool.close()


async def test_the_statement_alone_is_atomic_and_durable(private_stack: Settings) -> None:
    """Outside a transaction one call is one commit: seen at once by another connection."""
    encoded = handlers._new_issue(
        command(f"alone-{uuid.uuid4()}"), default_region="CN", source=SOURCE
    )
    dsn = asyncpg_dsn(private_stack.service_database_url("intake"))
    writer, reader = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        [row] = await writer.fetch(
            "SELECT * FROM intake.accept_issues($1::jsonb)", f"[{encoded.decode()}]"
        )
        assert row["outcome"] == "accepted" and not writer.is_in_transaction()
        assert (
            await reader.fetchval(
                "SELECT count(*) FROM intake.outbox WHERE payload->>'subject' = $1",
                str(row["issue_id"]),
            )
            == 1
        )
    finally:
        await writer.close()
        await reader.close()
