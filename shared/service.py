"""Composition root shared by the four services: one process = HTTP app + consumer + relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import aio_pika
import uvicorn
from aio_pika.abc import AbstractRobustConnection
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel
from sqlalchemy import Table

from shared.auth import ApiKeyAuth, Principal, RateLimiter, RateLimitHeaders, require
from shared.contracts import service_source
from shared.db import Database, Outbox, create_engine
from shared.http import BodySizeLimit, RequestMetrics
from shared.logging import configure_logging, get_logger
from shared.messaging.consumer import AnySubscription, Consumer
from shared.messaging.provenance import Provenance, amqp_user
from shared.messaging.publisher import Publisher
from shared.messaging.topology import (
    check_subscriptions,
    dead_letter_queue_name,
    declare_archive,
    declare_events_exchange,
)
from shared.privacy import CustomerRows, customer_data_router
from shared.problems import install_problem_handlers
from shared.relay import OutboxRelay, measure_outbox
from shared.settings import Settings, get_settings
from shared.tracing import TraceRequests, configure_tracing, otlp_endpoint, shutdown_tracing

log = get_logger(__name__)

BROKER_CONNECTED = Gauge(
    "kefu_broker_connected",
    "1 while the service is connected to the broker, relaying and consuming; else 0",
    ["service"],
)
DLQ_MESSAGES = Gauge(
    "kefu_dlq_messages", "Messages in the service's dead-letter queue", ["service"]
)


class KeyInfo(BaseModel):
    name: str
    scopes: list[str]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    outbox: Table
    inbox: Table
    api_keys: Table
    routers: Sequence[APIRouter] = ()
    subscriptions: Sequence[AnySubscription] = ()
    # Loops that run beside the consumer for the life of the process (e.g. improvement's
    # theme evaluation); each gets the service's database and runs until cancelled.
    workers: Sequence[Callable[[Database], Coroutine[Any, Any, None]]] = ()
    # Loops that also need the broker (webhooks' delivery worker): started once connected,
    # on the robust connection, which restores their channels after a reconnect.
    broker_workers: Sequence[
        Callable[[Database, AbstractRobustConnection], Coroutine[Any, Any, None]]
    ] = ()
    # Customers erased (shared/erasure.py), for a service that keeps customer data from events.
    erasures: Table | None = None
    # Tables that hold customers' data, each with its customer id: served by GET
    # /v1/customers/{id}/data for intake's export (shared/privacy.py).
    customer_tables: Sequence[CustomerRows] = ()


class Broker:
    """Connects in the background (with retries) so HTTP serves even while the broker is down."""

    def __init__(self, definition: ServiceDefinition, settings: Settings, db: Database) -> None:
        # Set-up binds the service's queue from CONSUMES: a subscription it does not list would
        # silently receive nothing until the consumer's own declare, so refuse to start.
        check_subscriptions(definition.name, [s.type for s in definition.subscriptions])
        self.definition = definition
        self.settings = settings
        self.db = db
        self.connection: AbstractRobustConnection | None = None
        user_id = amqp_user(settings.amqp_url)
        # With a broker user per service (set-up made them), set-up alone declares topology.
        self.owns_no_topology = settings.amqp_user_prefix is not None
        self.publisher = Publisher(timeout=settings.publish_timeout_seconds, user_id=user_id)
        self.consumer = Consumer(
            service=definition.name,
            db=db,
            inbox=definition.inbox,
            subscriptions=definition.subscriptions,
            prefetch=settings.prefetch,
            batch_size=settings.consumer_batch_size,
            delivery_limit=settings.delivery_limit,
            dlq_max_length=settings.dlq_max_length,
            retry_max_seconds=settings.consumer_retry_max_seconds,
            transient_retries=settings.consumer_transient_retries,
            hold_seconds=settings.consumer_hold_seconds,
            provenance=Provenance(definition.name, settings.amqp_user_prefix),
            user_id=user_id,
            declare=not self.owns_no_topology,
            erasures=definition.erasures,
        )
        self._setup: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._dlq_gauge: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """Set up, connected right now, relaying, and every broker worker still running."""
        return (
            self.connection is not None
            and self.connection.connected.is_set()
            and self._relay is not None
            and not self._relay.done()
            and not any(worker.done() for worker in self._workers)
        )

    async def start(self) -> None:
        self._setup = asyncio.create_task(self._set_up(), name="broker-setup")

    async def _set_up(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._connect()
                return
            except Exception as exc:
                # Broker away, or a queue declared with other arguments: say so, keep trying.
                log.warning("broker set-up failed", error=repr(exc), retry_in=delay)
                await self._close_connection()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)  # capped: connected within seconds of its return

    async def _connect(self) -> None:
        self.connection = await aio_pika.connect_robust(
            self.settings.amqp_url,
            client_properties={"connection_name": f"kefu-{self.definition.name}"},
        )
        # With its own broker user a service may configure nothing: set-up declared it all.
        if not self.owns_no_topology:
            channel = await self.connection.channel()
            await declare_events_exchange(channel)
            await declare_archive(
                channel,
                max_age=self.settings.archive_max_age,
                max_bytes=self.settings.archive_max_bytes,
            )
            await channel.close()
        await self.publisher.open(self.connection)
        if self.definition.subscriptions:
            await self.consumer.start(self.connection)
        relay = OutboxRelay(
            self.db,
            self.publisher,
            listen_url=self.settings.service_database_url(self.definition.name),
            poll_seconds=self.settings.outbox_poll_seconds,
            batch_size=self.settings.outbox_batch_size,
            retention=timedelta(days=self.settings.outbox_retention_days),
        )
        self._relay = asyncio.create_task(relay.run(), name="outbox-relay")
        self._workers = [
            asyncio.create_task(worker(self.db, self.connection), name="broker-worker")
            for worker in self.definition.broker_workers
        ]
        if self.definition.subscriptions:
            self._dlq_gauge = asyncio.create_task(
                self._measure_dead_letters(self.connection), name="dlq-gauge"
            )
        log.info("broker connected", consuming=sorted(self.consumer.subscriptions))

    async def _measure_dead_letters(self, connection: AbstractRobustConnection) -> None:
        """The DLQ's depth, from a passive declare (a read: a broker user that may configure
        nothing may do it) every metrics_refresh_seconds, never per scrape."""
        name = dead_letter_queue_name(self.definition.name)
        channel = None
        while True:
            try:
                if channel is None or channel.is_closed:
                    channel = await connection.channel()
                queue = await channel.declare_queue(name, passive=True, robust=False)
                depth = queue.declaration_result.message_count or 0
                # Shown only once measured: no sample means not measured yet.
                DLQ_MESSAGES.labels(self.definition.name).set(depth)
            except Exception as exc:  # broker away, or no DLQ yet (the channel closes): later
                log.debug("DLQ gauge not refreshed", error=repr(exc))
            await asyncio.sleep(self.settings.metrics_refresh_seconds)

    async def _close_connection(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
            self.connection = None

    async def stop(self) -> None:
        await self.consumer.stop()
        for task in (self._setup, self._relay, self._dlq_gauge, *self._workers):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self.publisher.close()
        await self._close_connection()


def create_app(definition: ServiceDefinition, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(definition.name, settings.log_level, settings.log_json)
    tracing = configure_tracing(definition.name, otlp_endpoint(settings.otlp_endpoint))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.service_database_url(definition.name)
        engine = create_engine(
            url, pool_size=settings.db_pool_size, timeout=settings.db_timeout_seconds
        )
        db = Database(engine, Outbox(definition.outbox, source=service_source(definition.name)))
        bootstrap = settings.bootstrap_api_key
        app.state.settings = settings
        app.state.db = db
        app.state.auth = ApiKeyAuth(
            engine,
            definition.api_keys,
            bootstrap_key=bootstrap.get_secret_value() if bootstrap else None,
            cache_seconds=settings.api_key_cache_seconds,
            rate_limiter=RateLimiter(
                settings.rate_limit_per_second,
                settings.rate_limit_burst,
                replicas=settings.rate_limit_replicas,
            )
            if settings.rate_limit_per_second > 0
            else None,
            failure_limiter=RateLimiter(
                settings.failed_auth_per_second,
                settings.failed_auth_burst,
                replicas=settings.rate_limit_replicas,
            )
            if settings.failed_auth_per_second > 0
            else None,
        )
        app.state.broker = broker = Broker(definition, settings, db)
        BROKER_CONNECTED.labels(definition.name).set_function(lambda: float(broker.healthy))
        await broker.start()
        workers = [
            asyncio.create_task(worker(db), name=f"{definition.name}-worker")
            for worker in definition.workers
        ]
        workers.append(
            asyncio.create_task(
                measure_outbox(db, definition.name, settings.metrics_refresh_seconds),
                name="outbox-gauges",
            )
        )
        # Only a cache can hold a revoked key: without one, no listener (and no connection).
        if settings.api_key_cache_seconds > 0:
            workers.append(
                asyncio.create_task(
                    app.state.auth.listen_for_revocations(url), name="revocation-listener"
                )
            )
        try:
            yield
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await broker.stop()
            await db.dispose()
            if tracing:
                shutdown_tracing()

    app = FastAPI(title=f"Kefu {definition.name}", version="1", lifespan=lifespan)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    for router in definition.routers:
        app.include_router(router)
    if definition.customer_tables:
        app.include_router(customer_data_router(definition.name, definition.customer_tables))

    @app.get("/v1/me", response_model=KeyInfo, tags=["auth"])
    async def me(principal: Annotated[Principal, Depends(require(None))]) -> KeyInfo:
        """The calling key's name and the scopes this service grants it (the console signs in
        with it)."""
        return KeyInfo(name=principal.name, scopes=sorted(principal.scopes))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready while the database answers: every HTTP route needs it, none needs the broker
        (intake accepts into its outbox, the read APIs read their own tables). The broker's
        state is reported, and in kefu_broker_connected, but a broker outage hits every
        replica alike: taking them out of service would only stop the HTTP APIs too."""
        checks = {"database": "ok", "broker": "ok" if app.state.broker.healthy else "down"}
        try:
            await asyncio.wait_for(app.state.db.ping(), timeout=2)
        except Exception as exc:
            checks["database"] = f"down: {type(exc).__name__}"
        return JSONResponse(checks, status_code=200 if checks["database"] == "ok" else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    unobserved = frozenset({"/metrics", "/healthz", "/readyz"})
    app.add_middleware(RequestMetrics, excluded=unobserved)
    if tracing:
        app.add_middleware(TraceRequests, excluded=unobserved)
    return app


def run(definition: ServiceDefinition) -> None:
    """``python -m services.<name>``: serve until SIGINT/SIGTERM, then stop cleanly.

    The socket is bound with SO_REUSEPORT, so replicas of a service share its port: the kernel
    spreads new connections over them (deploy/launcher.py starts replicas this way).
    """
    import socket

    settings = get_settings()
    host, port = settings.host, settings.service_port(definition.name)
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    config = uvicorn.Config(
        create_app(definition, settings),
        host=host,
        port=port,
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])
