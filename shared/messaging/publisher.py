"""Persistent, confirmed, mandatory publishing with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from pamqp.commands import Basic

from shared.contracts import CLOUDEVENTS_CONTENT_TYPE, routing_key
from shared.messaging.topology import EVENTS_EXCHANGE

READY_POLL_SECONDS = 1.0


class PublishNotConfirmed(RuntimeError):
    """The broker did not take responsibility for the message (nack, return or no answer)."""


def event_message(
    payload: dict[str, Any], body: bytes, user_id: str | None = None
) -> aio_pika.Message:
    # user_id: the connection's broker user, which RabbitMQ checks, so consumers can trust it.
    return aio_pika.Message(
        body=body,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(payload["id"]),
        type=payload["type"],
        app_id=payload["source"],
        user_id=user_id,
    )


class Publisher:
    def __init__(
        self,
        exchange_name: str = EVENTS_EXCHANGE,
        *,
        timeout: float = 10.0,
        user_id: str | None = None,
    ) -> None:
        self.exchange_name = exchange_name
        self.timeout = timeout
        self.user_id = user_id
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def ready(self) -> None:
        """Return once the connection is up and the broker lets publishers write: under a
        memory or disk alarm it blocks them, and a publish started then would only time out
        and go again after a back-off, long after the alarm cleared."""
        if self._connection is None:
            return  # publish says why
        while True:
            await self._connection.connected.wait()
            transport = self._connection.transport
            if transport is None:
                await asyncio.sleep(READY_POLL_SECONDS)
                continue
            # Bounded, then asked again: a connection lost while blocked never says it is
            # unblocked, and the robust connection's next one is another transport.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(transport.connection.ready(), READY_POLL_SECONDS)
                return

    async def open(self, connection: AbstractConnection) -> None:
        self._connection = connection
        # Confirms tell us the broker has the message; on_return_raises makes an unroutable
        # mandatory publish an error instead of a silent drop.
        self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._channel.get_exchange(self.exchange_name, ensure=True)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def publish(self, payload: dict[str, Any], body: bytes) -> None:
        """Return only once the broker confirmed the message; raise otherwise."""
        if self._exchange is None:
            raise PublishNotConfirmed("publisher is not connected")
        try:
            # The whole call is bounded: aio-pika's own timeout leaves out the wait for a
            # reconnecting channel.
            confirmation = await asyncio.wait_for(
                self._exchange.publish(
                    event_message(payload, body, self.user_id),
                    routing_key=routing_key(payload["type"]),
                    mandatory=True,
                    timeout=self.timeout,
                ),
                self.timeout,
            )
        except Exception as exc:
            raise PublishNotConfirmed(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(confirmation, Basic.Ack):
            raise PublishNotConfirmed(f"broker answered {confirmation!r}")
