"""The bare stack Kefu is measured against, in the same run, on the same Postgres and RabbitMQ.

- ``serve``: a bare FastAPI app in one uvicorn process (uvloop and httptools, as
  ``uvicorn[standard]`` picks, like intake) that validates a pydantic body of an issue's shape and
  does one INSERT through an asyncpg pool (``POST /v1/issues``), or one 100-row INSERT
  (``POST /v1/issues/batch``), into its own schema ``bench_ceiling`` of the bench's database.
  No authentication, no outbox, no customer matching: the floor under any real intake.
- ``stage``: a bare consumer stage on the bench's vhost: a quorum queue is filled with events,
  then consumed with a prefetch window; each window is handled as one batch: one multi-row
  INSERT, the outgoing messages published pipelined with publisher confirms, one commit, then
  one ack for the window. It prints its messages per second.

``python -m bench.ceilings serve --dsn ... --port ...`` / ``stage --dsn ... --amqp ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import aio_pika
import asyncpg
import uvicorn
from aio_pika.abc import AbstractIncomingMessage
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "bench_ceiling"
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.issues (
    id uuid PRIMARY KEY,
    channel text NOT NULL,
    external_id text NOT NULL,
    customer jsonb NOT NULL,
    text text NOT NULL,
    subject text,
    metadata jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, external_id)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.stage_inbox (
    id uuid PRIMARY KEY,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
"""

Channel = Literal["email", "phone", "chat", "web", "social", "sms", "other"]


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    external_id: str | None = Field(None, max_length=200)


class IssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel
    external_id: str = Field(min_length=1, max_length=200)
    customer: CustomerIn
    text: str = Field(min_length=1, max_length=20_000)
    subject: str | None = Field(None, max_length=200)
    occurred_at: datetime | None = None
    language: str | None = Field(None, max_length=35)
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=50)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[IssueIn] = Field(min_length=1, max_length=100)


INSERT_ONE = f"""
INSERT INTO {SCHEMA}.issues (id, channel, external_id, customer, text, subject, metadata)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb)
"""
INSERT_MANY = f"""
INSERT INTO {SCHEMA}.issues (id, channel, external_id, customer, text, subject, metadata)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
                     $7::jsonb[])
"""


def _row(issue: IssueIn) -> tuple[uuid.UUID, str, str, str, str, str | None, str]:
    return (
        uuid.uuid4(),
        issue.channel,
        issue.external_id,
        issue.customer.model_dump_json(exclude_none=True),
        issue.text,
        issue.subject,
        json.dumps(issue.metadata),
    )


def create_app(dsn: str, pool_size: int) -> FastAPI:
    pools: list[asyncpg.Pool] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/issues")
    async def submit(issue: IssueIn) -> JSONResponse:
        row = _row(issue)
        async with pools[0].acquire() as conn:
            await conn.execute(INSERT_ONE, *row)
        return JSONResponse(
            {"issue_id": str(row[0]), "status": "accepted", "duplicate": False}, status_code=202
        )

    @app.post("/v1/issues/batch")
    async def submit_batch(batch: BatchIn) -> dict[str, Any]:
        rows = [_row(item) for item in batch.items]
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with pools[0].acquire() as conn:
            await conn.execute(INSERT_MANY, *columns)
        return {
            "results": [
                {"index": i, "status": 202, "issue_id": str(row[0]), "duplicate": False}
                for i, row in enumerate(rows)
            ]
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def prepare(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(DDL)
    finally:
        await conn.close()


# --------------------------------------------------------------------------------- the stage

STAGE_IN = "bench.stage.in"
STAGE_OUT = "bench.stage.out"


def _event(index: int) -> bytes:
    """An event of a real one's size (an issue.received, about 700 bytes)."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/kefu/intake",
            "type": "kefu.issue.received",
            "subject": str(uuid.uuid4()),
            "time": "2026-11-30T12:00:00+00:00",
            "datacontenttype": "application/json",
            "data": {
                "issue_id": str(uuid.uuid4()),
                "channel": "chat",
                "external_id": f"stage-{index}",
                "customer": {
                    "id": str(uuid.uuid4()),
                    "name": f"客户{index}",
                    "phone": "+8613900000000",
                },
                "subject": None,
                "text": "满意度为中，需要更快的发货",
                "language": None,
                "metadata": {},
                "occurred_at": None,
                "received_at": "2026-11-30T12:00:00+00:00",
            },
        },
        ensure_ascii=False,
    ).encode()


async def stage(amqp_url: str, dsn: str, count: int, prefetch: int, batch: int) -> dict[str, Any]:
    connection = await aio_pika.connect(amqp_url)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        channel = await connection.channel(publisher_confirms=True)
        quorum: dict[str, Any] = {"x-queue-type": "quorum"}
        source = await channel.declare_queue(STAGE_IN, durable=True, arguments=quorum)
        sink = await channel.declare_queue(STAGE_OUT, durable=True, arguments=quorum)
        await source.purge()
        await sink.purge()
        for start in range(0, count, 500):  # fill the queue before the clock starts
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(_event(i), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=STAGE_IN,
                    )
                    for i in range(start, min(count, start + 500))
                )
            )

        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=prefetch)
        queue = await consuming.declare_queue(STAGE_IN, durable=True, arguments=quorum)
        arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def on_message(message: AbstractIncomingMessage) -> None:
            arrived.put_nowait(message)

        done = 0
        batches = 0
        cpu = time.process_time()
        started = time.perf_counter()
        tag = await queue.consume(on_message)
        while done < count:
            window = [await arrived.get()]
            while len(window) < batch and not arrived.empty():
                window.append(arrived.get_nowait())
            events = [json.loads(message.body) for message in window]
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.stage_inbox (id, payload) "
                    "SELECT * FROM unnest($1::uuid[], $2::jsonb[]) ON CONFLICT DO NOTHING",
                    [uuid.UUID(e["id"]) for e in events],
                    [json.dumps(e["data"], ensure_ascii=False) for e in events],
                )
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            aio_pika.Message(
                                json.dumps(
                                    {**e, "id": str(uuid.uuid4()), "type": "kefu.stage.done"},
                                    ensure_ascii=False,
                                ).encode(),
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=STAGE_OUT,
                        )
                        for e in events
                    )
                )
            await window[-1].ack(multiple=True)
            done += len(window)
            batches += 1
        elapsed = time.perf_counter() - started
        cpu_used = time.process_time() - cpu
        await queue.cancel(tag)
        await source.delete(if_unused=False, if_empty=False)
        await sink.delete(if_unused=False, if_empty=False)
    finally:
        await pool.close()
        await connection.close()
    return {
        "messages": count,
        "prefetch": prefetch,
        "batch": batch,
        "batches": batches,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(count / elapsed, 1),
        "cpu_ms_per_message": round(1000 * cpu_used / count, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--dsn", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--pool", type=int, default=10)
    run_stage = commands.add_parser("stage")
    run_stage.add_argument("--dsn", required=True)
    run_stage.add_argument("--amqp", required=True)
    run_stage.add_argument("--count", type=int, default=5000)
    run_stage.add_argument("--prefetch", type=int, default=200)
    run_stage.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(prepare(args.dsn))
        uvicorn.run(
            create_app(args.dsn, args.pool),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
        )
    else:
        asyncio.run(prepare(args.dsn))
        figures = asyncio.run(stage(args.amqp, args.dsn, args.count, args.prefetch, args.batch))
        print("KEFU-BENCH " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
