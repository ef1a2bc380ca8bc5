"""Erasure reaches the dead-letter queues: a failed event waits there as it was published, with
the customer's data, until someone replays or purges it.

``scrub`` replaces each such copy in a service's DLQ by the same event without the erased
customers' data (``shared.contracts.without_personal_data``, as the consumer strips events that
arrive after an erasure), so the event can still be replayed and nothing accepted is lost.
Every consuming service scrubs its own DLQ once it has handled ``kefu.customer.erased``;
`kefu dlq scrub` does it for every DLQ and every erased customer (a message dead-lettered by the
broker after that service's scrub).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import aio_pika
from aio_pika.abc import AbstractConnection
from pamqp.commands import Basic

from shared.contracts import UndecodableEvent, customer_of, decode_event, without_personal_data
from shared.messaging.topology import dead_letter_queue_name

SCRUBBED_HEADER = "x-kefu-scrubbed"


async def scrub(
    connection: AbstractConnection,
    service: str,
    erased: Collection[uuid.UUID],
    user_id: str | None = None,
) -> int:
    """Strip the erased customers' events in ``service``'s DLQ; returns how many were stripped.

    Each stripped copy goes to the back of the DLQ, confirmed, before its original is acked;
    the other messages are never acked, so closing the channel returns them in their order."""
    name = dead_letter_queue_name(service)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    scrubbed = 0
    try:
        queue = await channel.declare_queue(name, passive=True)
        # Only what is there now: the stripped copies behind them are not read again.
        waiting = queue.declaration_result.message_count or 0
        for _ in range(waiting):
            message = await queue.get(fail=False, timeout=5)
            if message is None:
                break
            try:
                event, data = decode_event(message.body)
            except UndecodableEvent:
                continue
            if message.headers.get(SCRUBBED_HEADER) or customer_of(data) not in erased:
                continue
            stripped = event.model_copy(
                update={"data": without_personal_data(data).model_dump(mode="json")}
            )
            copy = aio_pika.Message(
                body=stripped.model_dump_json().encode(),
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                type=message.type,
                app_id=message.app_id,
                user_id=user_id,
                timestamp=message.timestamp,
                headers={**(message.headers or {}), SCRUBBED_HEADER: True},
            )
            confirmation = await channel.default_exchange.publish(
                copy, routing_key=name, mandatory=True, timeout=10
            )
            if not isinstance(confirmation, Basic.Ack):
                raise RuntimeError(f"stripped copy of {message.message_id} not confirmed")
            await message.ack()
            scrubbed += 1
    finally:
        await channel.close()
    return scrubbed
