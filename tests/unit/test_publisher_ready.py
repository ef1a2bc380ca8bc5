"""The relay waits on ``Publisher.ready`` before each batch: it must come back when the broker
lets publishers write again, even on another connection than the one that was blocked."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from shared.messaging import publisher as publisher_module
from shared.messaging.publisher import Publisher

pytestmark = pytest.mark.asyncio


def _transport(unblocked: asyncio.Event) -> Any:
    async def ready() -> None:
        await unblocked.wait()

    return SimpleNamespace(connection=SimpleNamespace(ready=ready))


async def test_ready_follows_the_connection_that_replaced_a_blocked_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publisher_module, "READY_POLL_SECONDS", 0.05)
    connected = asyncio.Event()
    connected.set()
    never = asyncio.Event()  # lost while blocked: never says it is unblocked
    connection = SimpleNamespace(connected=connected, transport=_transport(never))
    publisher = Publisher()
    publisher._connection = connection  # type: ignore[assignment]
    waiting = asyncio.create_task(publisher.ready())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # blocked
    unblocked = asyncio.Event()
    unblocked.set()
    connection.transport = _transport(unblocked)  # the robust connection reconnected
    await asyncio.wait_for(waiting, 1)


async def test_ready_waits_while_the_connection_is_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "READY_POLL_SECONDS", 0.05)
    connected = asyncio.Event()
    unblocked = asyncio.Event()
    unblocked.set()
    connection = SimpleNamespace(connected=connected, transport=None)
    publisher = Publisher()
    publisher._connection = connection  # type: ignore[assignment]
    waiting = asyncio.create_task(publisher.ready())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    connection.transport = _transport(unblocked)
    connected.set()
    await asyncio.wait_for(waiting, 1)
