"""The relay's back-off while the broker is away (shared/relay.py run()): it grows on time, not
with every NOTIFY that wakes the relay, is capped, and resets as soon as a round succeeds."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.improvement.bootstrap import definition as improvement
from shared.contracts import CustomerRef, SatisfactionEvaluated
from shared.db import Database
from shared.relay import RETRY_MAX_SECONDS, OutboxRelay
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FlakyPublisher:
    def __init__(self) -> None:
        self.down = True
        self.rounds: list[float] = []
        self.published: list[str] = []

    async def ready(self) -> None:
        return None  # failing publishes are what this test is about

    async def publish(self, payload: dict[str, Any], body: bytes) -> None:
        self.rounds.append(time.monotonic())
        if self.down:
            raise RuntimeError("broker away")
        self.published.append(str(payload["id"]))


async def emit_one(db: Database) -> str:
    async with db.unit_of_work() as uow:
        event = uow.emit(
            SatisfactionEvaluated(
                issue_id=uuid.uuid4(),
                customer=CustomerRef(customer_id=uuid.uuid4()),
                score=0.5,
                verdict="neutral",
                source="implicit",
                basis="test",
                evaluated_at=datetime.now(UTC),
            )
        )
    return str(event.id)


async def test_relay_backs_off_on_time_and_resets_when_the_broker_returns(
    private_stack: Settings,
) -> None:
    db = await open_database(private_stack, improvement)
    first = await emit_one(db)
    publisher = FlakyPublisher()
    relay = OutboxRelay(
        db,
        publisher,
        listen_url=private_stack.service_database_url("improvement"),
        poll_seconds=1.0,
    )
    task = asyncio.create_task(relay.run())
    try:
        # Four seconds of outage under traffic: a NOTIFY every 20 ms.
        end = time.monotonic() + 4
        while time.monotonic() < end:
            relay._wakeup.set()
            await asyncio.sleep(0.02)
        # Rounds at about 0, 1, 3 s (back-off 1, 2, 4...): not one per wake-up (~200).
        assert 2 <= len(publisher.rounds) <= 4, publisher.rounds

        publisher.down = False
        back = time.monotonic()
        await wait_until(lambda: first in publisher.published, timeout=15, what="catch-up")
        assert time.monotonic() - back <= RETRY_MAX_SECONDS + 1

        # Reset: a new event is relayed on its wake-up, well before the poll or a back-off.
        second = await emit_one(db)
        woken = time.monotonic()
        relay._wakeup.set()
        await wait_until(lambda: second in publisher.published, timeout=5, what="second")
        assert time.monotonic() - woken < 0.8
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.dispose()
