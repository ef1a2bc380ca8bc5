"""webhooks' use cases: the fan-out of each event to the endpoints that want it (in the
consumer's transaction), and the management of endpoints and their deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractConnection
from sqlalchemy import Row

from services.webhooks.adapters import bindings, tables
from services.webhooks.adapters import repository as repo
from services.webhooks.adapters.erasure import erase_customers
from services.webhooks.domain.subscriptions import Selector, check_patterns, new_secret
from shared.contracts import EVENT_TYPES, CloudEvent, CustomerErased
from shared.db import Database, UnitOfWork
from shared.erasure import record_erasures
from shared.errors import BrokerUnavailable, Conflict, NotFound
from shared.logging import get_logger
from shared.messaging.consumer import EnvelopeSubscription

log = get_logger(__name__)


async def fan_out(events: Sequence[CloudEvent], uow: UnitOfWork) -> None:
    """One delivery per (matching endpoint, event), in the message's transaction: once the
    event is acked, its deliveries are stored. A paused endpoint's wait for its resume."""
    endpoints = await repo.selectors(uow.session)
    rows = []
    for endpoint in endpoints:
        selector = Selector.of(endpoint.events, endpoint.channels, endpoint.intents)
        status = "paused" if endpoint.status == "paused" else "pending"
        for event in events:
            if selector.wants(event.type, event.data):
                rows.append((endpoint.id, event.id, event.type, event.model_dump_json(), status))
    await repo.insert_deliveries(uow.session, rows)


async def fan_out_erasures(events: Sequence[CloudEvent], uow: UnitOfWork) -> None:
    """Subscribers hear of the erasure; the delivery log forgets the customer."""
    await fan_out(events, uow)
    erased = [CustomerErased.model_validate(event.data) for event in events]
    await record_erasures(uow, tables.erasures, {e.customer_id: e.erased_at for e in erased})
    await erase_customers(uow.session, [e.customer_id for e in erased])


def make_subscriptions() -> list[EnvelopeSubscription]:
    return [
        EnvelopeSubscription(
            event_type, fan_out_erasures if event_type == CustomerErased.TYPE else fan_out
        )
        for event_type in EVENT_TYPES
    ]


async def create_endpoint(
    uow: UnitOfWork,
    broker: AbstractConnection,
    *,
    url: str,
    events: Sequence[str],
    channels: Sequence[str] | None,
    intents: Sequence[str] | None,
    description: str | None,
    max_in_flight: int,
) -> Row[Any]:
    now = datetime.now(UTC)
    row = await repo.insert_endpoint(
        uow.session,
        id=uuid.uuid4(),
        url=url,
        description=description,
        events=check_patterns(events),
        channels=sorted(set(channels)) if channels is not None else None,
        intents=sorted(set(intents)) if intents is not None else None,
        secret=new_secret(),
        max_in_flight=max_in_flight,
        created_at=now,
        updated_at=now,
    )
    await bindings.bind_wanted(broker, uow.session)
    return row


async def change_endpoint(
    uow: UnitOfWork,
    broker: AbstractConnection | None,
    endpoint_id: uuid.UUID,
    changes: dict[str, Any],
) -> Row[Any]:
    """``broker``: needed when ``events`` changes (its types are bound before the commit)."""
    if "events" in changes:
        changes["events"] = check_patterns(changes["events"])
    for name in ("channels", "intents"):
        if changes.get(name) is not None:
            changes[name] = sorted(set(changes[name]))
    row = await repo.update_endpoint(uow.session, endpoint_id, **changes)
    if row is None:
        raise NotFound(f"no webhook {endpoint_id}")
    if "events" in changes:
        if broker is None:
            raise BrokerUnavailable("the broker is unavailable, so the new events cannot be bound")
        await bindings.bind_wanted(broker, uow.session)
    return row


async def endpoint(uow: UnitOfWork, endpoint_id: uuid.UUID) -> Row[Any]:
    row = await repo.get_endpoint(uow.session, endpoint_id)
    if row is None:
        raise NotFound(f"no webhook {endpoint_id}")
    return row


async def remove_endpoint(uow: UnitOfWork, endpoint_id: uuid.UUID) -> None:
    if not await repo.delete_endpoint(uow.session, endpoint_id):
        raise NotFound(f"no webhook {endpoint_id}")


async def unbind_unwanted(db: Database, broker: AbstractConnection) -> None:
    """After endpoints were removed or narrowed: their types no longer reach the queue. Best
    effort: the periodic reconciliation retries what fails here."""
    try:
        await bindings.reconcile(db, broker)
    except Exception as exc:
        log.warning("webhook bindings not reconciled; the next round will", error=repr(exc))


async def resume(uow: UnitOfWork, endpoint_id: uuid.UUID) -> Row[Any]:
    row = await repo.resume_endpoint(uow.session, endpoint_id)
    if row is None:
        raise NotFound(f"no webhook {endpoint_id}")
    return row


async def redeliver(uow: UnitOfWork, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> Row[Any]:
    """Send one delivery again, whatever became of it, from the schedule's first try."""
    hook = await endpoint(uow, endpoint_id)
    if await repo.get_delivery(uow.session, endpoint_id, delivery_id) is None:
        raise NotFound(f"no delivery {delivery_id} of webhook {endpoint_id}")
    if hook.status == "paused":
        raise Conflict(
            "the webhook is paused: resume it (POST …/resume), which sends what it holds",
            field="status",
        )
    return await repo.send_again(uow.session, delivery_id)
