"""A downstream system's subscriber: binds its own durable queue to Kefu's improvement events
and prints each one as it arrives.

    python docs/examples/subscriber.py --amqp-url amqp://guest:guest@127.0.0.1:5672/ \\
        --queue crm.kefu-improvements

The queue is durable and outlives the subscriber: events published while it is away wait in it.
Each message is acknowledged only after it was handled, so a crash means a redelivery, never a
loss; handle an event id twice as once (it is the AMQP message_id and the event's "id").
Needs only aio-pika.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aio_pika


async def subscribe(amqp_url: str, queue_name: str, binding: str, limit: int | None) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        # Kefu's set-up declares the exchange; a passive look-up needs no configure right.
        exchange = await channel.get_exchange("kefu.events", ensure=True)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, routing_key=binding)
        print(f"listening on {queue_name} <- kefu.events [{binding}]", flush=True)
        seen = 0
        async with queue.iterator() as messages:
            async for message in messages:
                event = json.loads(message.body)
                data = event["data"]
                customer = (data.get("customer") or {}).get("name")
                print(
                    json.dumps(
                        {
                            "type": event["type"],
                            "id": event["id"],
                            "subject": event.get("subject"),
                            "customer": customer,
                            "status": data.get("status"),
                            "summary": data.get("summary") or data.get("theme"),
                        },
                        ensure_ascii=False,
                    ),
                    flush=True,
                )
                await message.ack()  # after handling: a crash before this means a redelivery
                seen += 1
                if limit is not None and seen >= limit:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="example.kefu-improvements")
    parser.add_argument("--binding", default="improvement.#")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    args = parser.parse_args()
    asyncio.run(subscribe(args.amqp_url, args.queue, args.binding, args.limit))


if __name__ == "__main__":
    main()
