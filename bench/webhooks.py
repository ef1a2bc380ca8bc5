"""Webhook deliveries to a local receiver: deliveries per second, and the time from an event's
publication on kefu.events to its arrival at the receiver (p50, p99).

    python -m bench.webhooks [--events 2000] [--endpoints 2] [--max-in-flight 8] [--rate 0]

Starts the webhooks service on an isolated database and vhost, registers ``--endpoints``
endpoints at one local receiver (every event goes to each), publishes ``--events`` events
(as fast as the broker takes them, or paced at ``--rate`` per second), and waits for every
delivery. Nothing is lost or duplicated, or the run says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from bench.procs import cpu_seconds
from deploy.launcher import ServiceProcesses
from shared.contracts import CustomerRef, IssueReceived, new_event
from shared.messaging.topology import declare_events_exchange
from tests.support import BOOTSTRAP_KEY, WebhookReceiver, free_port, isolated_stack, wait_until


async def run(
    events: int, endpoints: int, max_in_flight: int, rate: float, url: str, amqp_url: str
) -> dict[str, Any]:
    published: dict[str, float] = {}
    async with (
        WebhookReceiver() as receiver,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
        ) as api,
    ):
        for index in range(endpoints):
            answer = await api.post(
                "/v1/webhooks",
                json={
                    "url": receiver.url(f"/e{index}"),
                    "events": ["issue.received"],
                    "max_in_flight": max_in_flight,
                },
            )
            answer.raise_for_status()
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await declare_events_exchange(channel)
            started = time.perf_counter()
            for number in range(events):
                event = new_event(
                    "/kefu/bench",
                    IssueReceived(
                        issue_id=uuid.uuid4(),
                        channel="chat",
                        external_id=f"bench-{number}",
                        customer=CustomerRef(customer_id=uuid.uuid4(), name="张三"),
                        text="需要更快的响应速度",
                        received_at=datetime.now(UTC),
                    ),
                )
                published[str(event.id)] = time.perf_counter()
                await exchange.publish(
                    aio_pika.Message(
                        event.model_dump_json().encode(),
                        message_id=str(event.id),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="issue.received",
                )
                if rate:
                    await asyncio.sleep(
                        max(0.0, started + (number + 1) / rate - time.perf_counter())
                    )
            wanted = events * endpoints
            with contextlib.suppress(AssertionError):  # a shortfall is reported as lost
                await wait_until(
                    lambda: len(receiver.received) >= wanted, timeout=120 + events / 10
                )
            await asyncio.sleep(1)  # anything more would be a duplicate
        received = receiver.received
        pairs = {(request.path, request.headers["webhook-id"]) for request in received}
        latencies = sorted(
            (request.at - published[request.headers["webhook-id"]]) * 1000 for request in received
        )
        elapsed = max(request.at for request in received) - started
        return {
            "events": events,
            "endpoints": endpoints,
            "max_in_flight": max_in_flight,
            "paced_rate": rate or None,
            "deliveries": len(received),
            "lost": wanted - len(pairs),
            "duplicated": len(received) - len(pairs),
            "deliveries_per_second": round(len(received) / elapsed, 1),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--max-in-flight", type=int, default=8, help="per endpoint")
    parser.add_argument("--log-dir", help="keep the service's log here")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s (0: as fast as taken)")
    args = parser.parse_args()
    with isolated_stack() as settings, tempfile.TemporaryDirectory() as scratch:
        logs = args.log_dir or scratch
        group = ServiceProcesses(
            settings,
            env={
                "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
                "KEFU_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
                "KEFU_WEBHOOKS_DISPATCH_POLL_SECONDS": "0.05",
            },
            ports={"webhooks": free_port()},
            services=("webhooks",),
            log_dir=Path(logs),
        )
        group.start_all()
        try:
            group.wait_ready(timeout=60)
            pid = group.procs["webhooks"].pid
            cpu_before = cpu_seconds(pid)
            result = asyncio.run(
                run(
                    args.events,
                    args.endpoints,
                    args.max_in_flight,
                    args.rate,
                    group.url("webhooks"),
                    settings.amqp_url,
                )
            )
            # What one delivery costs the service, whatever else the machine is doing.
            spent = cpu_seconds(pid) - cpu_before
            result["service_cpu_ms_per_delivery"] = round(spent * 1000 / result["deliveries"], 2)
        finally:
            group.stop_all()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
