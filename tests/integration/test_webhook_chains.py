"""The webhooks' job chains on the real database: the dispatcher claims each delivery once
across replicas, a job that never reached the broker is released, and an overdue one is given
a new chain (its old job, if it ever comes, is then dropped)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select

from services.webhooks.adapters import repository as repo
from services.webhooks.adapters.tables import deliveries, endpoints
from services.webhooks.bootstrap import definition as webhooks
from shared.db import Database
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
NOW = datetime.now(UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def db(private_stack: Settings) -> AsyncIterator[Database]:
    database = await open_database(private_stack, webhooks)
    yield database
    await database.dispose()


async def _endpoint(db: Database) -> uuid.UUID:
    endpoint_id = uuid.uuid4()
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            endpoints.insert().values(
                id=endpoint_id,
                url="https://example.com/hook",
                events=["#"],
                secret="whsec_AAAA",
                max_in_flight=4,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return endpoint_id


async def _delivery(db: Database, endpoint_id: uuid.UUID, **values: object) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            deliveries.insert().values(
                id=delivery_id,
                endpoint_id=endpoint_id,
                event_id=uuid.uuid4(),
                event_type="kefu.issue.received",
                event={"id": "x"},
                **{"status": "pending", "created_at": NOW, "updated_at": NOW, **values},
            )
        )
    return delivery_id


async def _row(db: Database, delivery_id: uuid.UUID) -> dict[str, object]:
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(deliveries).where(deliveries.c.id == delivery_id))
        ).one()
    return dict(row._mapping)


async def test_two_dispatchers_claim_each_delivery_once(db: Database) -> None:
    endpoint_id = await _endpoint(db)
    ids = {await _delivery(db, endpoint_id) for _ in range(30)}

    async def claim() -> list[uuid.UUID]:
        async with db.unit_of_work() as uow:
            claimed = await repo.claim_unqueued(uow.session, 100)
            await repo.mark_enqueued(uow.session, {i: uuid.uuid4() for i in claimed})
            await asyncio.sleep(0.2)  # both hold their claims at once
        return claimed

    first, second = await asyncio.gather(claim(), claim())
    mine = [i for i in first + second if i in ids]
    assert sorted(mine) == sorted(ids)  # each once, none twice


async def test_an_unconfirmed_job_is_released_and_an_overdue_one_gets_a_new_chain(
    db: Database,
) -> None:
    endpoint_id = await _endpoint(db)
    chain, other = uuid.uuid4(), uuid.uuid4()
    unconfirmed = await _delivery(db, endpoint_id, chain=chain, enqueued_at=NOW)
    superseded = await _delivery(db, endpoint_id, chain=other, enqueued_at=NOW)
    async with db.unit_of_work() as uow:
        # Only the chain that was not confirmed is released, not a newer one.
        await repo.release(uow.session, {unconfirmed: chain, superseded: chain})
    assert (await _row(db, unconfirmed))["enqueued_at"] is None
    assert (await _row(db, superseded))["chain"] == other

    old = NOW - timedelta(hours=1)
    lost_first = await _delivery(db, endpoint_id, chain=chain, enqueued_at=old)
    lost_retry = await _delivery(
        db, endpoint_id, chain=chain, enqueued_at=old, attempts=2, next_attempt_at=old
    )
    waiting_retry = await _delivery(
        db,
        endpoint_id,
        chain=chain,
        enqueued_at=old,
        attempts=2,
        next_attempt_at=NOW + timedelta(hours=2),
    )
    delivered = await _delivery(db, endpoint_id, chain=chain, enqueued_at=old, status="delivered")
    async with db.unit_of_work() as uow:
        released = await repo.release_stale(uow.session, NOW - timedelta(minutes=10))
    assert released >= 2
    for delivery_id in (lost_first, lost_retry):
        row = await _row(db, delivery_id)
        assert row["chain"] is None and row["enqueued_at"] is None  # the dispatcher's again
    for delivery_id in (waiting_retry, delivered, superseded):
        assert (await _row(db, delivery_id))["enqueued_at"] is not None


async def test_the_log_forgets_only_what_settled_before_its_retention(db: Database) -> None:
    endpoint_id = await _endpoint(db)
    old, cutoff = NOW - timedelta(days=40), NOW - timedelta(days=30)
    gone = [
        await _delivery(db, endpoint_id, status=status, updated_at=old)
        for status in ("delivered", "failed")
    ]
    kept = [
        await _delivery(db, endpoint_id, status="pending", updated_at=old),
        await _delivery(db, endpoint_id, status="paused", updated_at=old),
        await _delivery(db, endpoint_id, status="delivered", updated_at=NOW),
    ]
    async with db.unit_of_work() as uow:
        assert await repo.forget_settled(uow.session, cutoff, 1) == 1  # bounded
        assert await repo.forget_settled(uow.session, cutoff, 100) == 1
    async with db.unit_of_work() as uow:
        left = set(
            (
                await uow.session.execute(
                    select(deliveries.c.id).where(deliveries.c.endpoint_id == endpoint_id)
                )
            ).scalars()
        )
    assert left == set(kept) and not left & set(gone)
