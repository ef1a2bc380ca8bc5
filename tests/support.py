"""Test helpers: an isolated database + RabbitMQ vhost per stack, and a tap on kefu.events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client.parser import text_string_to_metric_families

from deploy import database
from shared.contracts import CloudEvent
from shared.db import asyncpg_dsn
from shared.messaging.topology import EVENTS_EXCHANGE, declare_archive, declare_events_exchange
from shared.settings import Settings

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
BOOTSTRAP_KEY = "kefu_test_bootstrap_key_0123456789"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def isolated_stack(**overrides: Any) -> Iterator[Settings]:
    """A fresh database (roles, schemas, migrations) and vhost, dropped afterwards."""
    name = f"kefu_test_{uuid.uuid4().hex[:12]}"
    admin_url = f"{POSTGRES}/{name}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        database.bootstrap(admin_url, {})
        database.migrate(admin_url)
        yield Settings(
            admin_database_url=admin_url,
            amqp_url=f"{RABBITMQ}/{name}",
            bootstrap_api_key=BOOTSTRAP_KEY,
            outbox_poll_seconds=0.5,
            delivery_limit=3,
            log_json=False,
            **overrides,
        )
    finally:
        try:
            asyncio.run(_drop_database(name))
        finally:
            _rabbitmqctl("delete_vhost", name)


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(f"{POSTGRES}/postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# Ports this process has handed out. The kernel may offer a just-closed port again, and
# services bind with SO_REUSEPORT: two services given one port would both start and split
# its connections (a browser stack's intake once answered 404 to half its requests).
_handed_out: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@dataclass
class EventTap:
    """A private queue bound to every event on kefu.events, as a downstream system would bind."""

    events: list[dict[str, Any]] = field(default_factory=list)
    seen_at: list[float] = field(default_factory=list)
    messages: list[AbstractIncomingMessage] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(), self._arrived:
            self.messages.append(message)
            self.events.append(json.loads(message.body))
            self.seen_at.append(time.perf_counter())
            self._arrived.notify_all()

    def matching(
        self,
        event_type: str,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type and where(e["data"])]

    async def wait_for(
        self,
        event_type: str,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        async with self._arrived:
            while not (found := self.matching(event_type, where)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [e["type"] for e in self.events]
                    raise AssertionError(f"no {event_type} within {timeout}s; saw {seen}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
        return found[0]


@contextlib.asynccontextmanager
async def event_tap(settings: Settings, binding: str = "#") -> AsyncIterator[EventTap]:
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        channel = await connection.channel()
        await declare_archive(
            channel, max_age=settings.archive_max_age, max_bytes=settings.archive_max_bytes
        )
        exchange = await channel.get_exchange("kefu.events")
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=binding)
        tap = EventTap()
        await queue.consume(tap._on_message)
        yield tap
    finally:
        await connection.close()


async def wait_until(
    check: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll an async or sync check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.1)


# Connection -> its one declaration of the exchange and archive. Declaring the stream from
# many channels at once (a test's gather of publishes) queues as many stream-coordinator
# commands on the broker; under a loaded CI box one of them failed with INTERNAL_ERROR,
# which closes the whole connection.
_topology_declared: weakref.WeakKeyDictionary[AbstractRobustConnection, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def _declare_topology_once(amqp: AbstractRobustConnection, settings: Settings) -> None:
    async def declare() -> None:
        channel = await amqp.channel()
        await declare_events_exchange(channel)
        await declare_archive(
            channel, max_age=settings.archive_max_age, max_bytes=settings.archive_max_bytes
        )
        await channel.close()

    if amqp not in _topology_declared:
        _topology_declared[amqp] = asyncio.ensure_future(declare())
    await _topology_declared[amqp]


async def publish(amqp: AbstractRobustConnection, settings: Settings, event: CloudEvent) -> None:
    await _declare_topology_once(amqp, settings)
    channel = await amqp.channel()
    exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
    await exchange.publish(
        aio_pika.Message(
            event.model_dump_json().encode(),
            message_id=str(event.id),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=event.type.removeprefix("kefu."),
    )
    await channel.close()


async def scrape(url: str, name: str, **labels: str) -> float | None:
    """One sample of a service's /metrics: the one named ``name`` with these labels (others
    may be there too), or None when it has none yet."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


async def queue_depth(amqp: AbstractRobustConnection, name: str) -> int:
    channel = await amqp.channel()
    queue = await channel.declare_queue(name, passive=True)
    count = queue.declaration_result.message_count or 0
    await channel.close()
    return count


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Behaviour = Callable[[Received], Awaitable[int]]


@dataclass
class WebhookReceiver:
    """A real HTTP/1.1 server on a free port (keep-alive, Content-Length bodies). Each path
    answers by its behaviour (a coroutine returning the status; one that never returns is a
    receiver that hangs); paths without one answer 204. Every request is recorded."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(path, headers, body, time.perf_counter())
                self.received.append(request)
                behaviour = self.behaviours.get(path)
                status = await behaviour(request) if behaviour else 204
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
