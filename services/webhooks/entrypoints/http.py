"""webhooks' API (scope ``webhooks:manage``): register, list, change and remove endpoints; their
delivery log; a delivery sent again by hand; a paused endpoint resumed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal

from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPError
from aiormq.exceptions import ChannelInvalidStateError
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import DBAPIError

from services.webhooks import handlers
from services.webhooks.adapters import repository as repo
from services.webhooks.adapters.sender import check_target
from shared.auth import Principal, require
from shared.contracts import Channel, Intent
from shared.db import sqlstate
from shared.errors import BrokerUnavailable
from shared.http import DatabaseDep
from shared.paging import Cursor, Limit, Page, decode_cursor, page_of
from shared.settings import WebhookSettings, get_webhook_settings
from shared.validation import NoNul

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
CanManage = Annotated[Principal, Depends(require("webhooks:manage"))]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), NoNul]
Pattern = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=500), NoNul]
InFlight = Annotated[int, Field(ge=1, le=100)]
DeliveryStatus = Literal["pending", "delivered", "failed", "paused"]
PAGE_KEY = (datetime, uuid.UUID)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url
    # Routing-key patterns of the events to send: "improvement.*", "issue.#", "#".
    events: Annotated[list[Pattern], Field(min_length=1, max_length=20)]
    # Only events of these channels / intents (omitted: any); an event without the field
    # does not pass the filter.
    channels: Annotated[list[Channel], Field(min_length=1)] | None = None
    intents: Annotated[list[Intent], Field(min_length=1)] | None = None
    description: Description | None = None
    # Calls in flight to this endpoint at once, at most.
    max_in_flight: InFlight = 4


class WebhookChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url | None = None
    events: Annotated[list[Pattern], Field(min_length=1, max_length=20)] | None = None
    channels: Annotated[list[Channel], Field(min_length=1)] | None = None
    intents: Annotated[list[Intent], Field(min_length=1)] | None = None
    description: Description | None = None
    max_in_flight: InFlight | None = None


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    url: str
    events: list[str]
    channels: list[Channel] | None
    intents: list[Intent] | None
    description: str | None
    max_in_flight: int
    status: Literal["active", "paused"]
    consecutive_failures: int
    paused_reason: str | None
    paused_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    # Shown once: the receiver verifies signatures with it.
    secret: str


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    webhook_id: uuid.UUID = Field(validation_alias="endpoint_id")
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_response: str | None
    last_duration_ms: float | None
    delivered_at: datetime | None
    created_at: datetime


async def _settings() -> WebhookSettings:
    return get_webhook_settings()


SettingsDep = Annotated[WebhookSettings, Depends(_settings)]


def _broker(request: Request) -> AbstractConnection | None:
    """The broker connection while it is up (a robust connection reconnecting is not)."""
    connection: AbstractConnection | None = request.app.state.broker.connection
    if connection is None or connection.is_closed or not connection.connected.is_set():
        return None
    return connection


BrokerDep = Annotated[AbstractConnection | None, Depends(_broker)]
LOCK_NOT_AVAILABLE = "55P03"
UNAVAILABLE = "the broker is unavailable, so the webhook's events cannot be bound; retry later"


@asynccontextmanager
async def _binding() -> AsyncIterator[None]:
    """A change that binds event types is refused (and rolled back) when the broker fails it or
    another change holds the bindings' lock too long."""
    try:
        yield
    except (AMQPError, ConnectionError, TimeoutError, ChannelInvalidStateError) as exc:
        raise BrokerUnavailable(UNAVAILABLE) from exc
    except DBAPIError as exc:
        if sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise
        raise BrokerUnavailable("another change of webhooks is being bound; retry") from exc


@router.post("", response_model=WebhookCreated, status_code=201)
async def create_webhook(
    body: WebhookCreate, db: DatabaseDep, broker: BrokerDep, settings: SettingsDep, _: CanManage
) -> WebhookCreated:
    await check_target(body.url, allow_private=settings.allow_private_targets)
    if broker is None:
        raise BrokerUnavailable(UNAVAILABLE)
    async with _binding(), db.unit_of_work() as uow:
        row = await handlers.create_endpoint(
            uow,
            broker,
            url=body.url,
            events=body.events,
            channels=body.channels,
            intents=body.intents,
            description=body.description,
            max_in_flight=body.max_in_flight,
        )
    return WebhookCreated.model_validate(row)


@router.get("", response_model=Page[WebhookRead])
async def list_webhooks(
    db: DatabaseDep, _: CanManage, limit: Limit = 50, cursor: Cursor = None
) -> Page[WebhookRead]:
    """Newest first."""
    key = decode_cursor(cursor, PAGE_KEY) if cursor else None
    async with db.unit_of_work() as uow:
        rows = await repo.endpoint_page(uow.session, limit=limit, key=key)
    items, next_cursor = page_of(rows, limit, lambda row: (row.created_at, row.id))
    return Page(items=[WebhookRead.model_validate(row) for row in items], next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=WebhookRead)
async def get_webhook(webhook_id: uuid.UUID, db: DatabaseDep, _: CanManage) -> WebhookRead:
    async with db.unit_of_work() as uow:
        return WebhookRead.model_validate(await handlers.endpoint(uow, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookRead)
async def change_webhook(
    webhook_id: uuid.UUID,
    body: WebhookChange,
    db: DatabaseDep,
    broker: BrokerDep,
    settings: SettingsDep,
    _: CanManage,
) -> WebhookRead:
    """Only the fields sent change; ``channels`` or ``intents`` null removes that filter."""
    changes = body.model_dump(exclude_unset=True)
    for required in ("url", "events", "max_in_flight"):
        if required in changes and changes[required] is None:
            changes.pop(required)
    if "url" in changes:
        await check_target(changes["url"], allow_private=settings.allow_private_targets)
    async with _binding(), db.unit_of_work() as uow:
        row = await handlers.change_endpoint(uow, broker, webhook_id, changes)
    if "events" in changes and broker is not None:
        await handlers.unbind_unwanted(db, broker)
    return WebhookRead.model_validate(row)


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(
    webhook_id: uuid.UUID, db: DatabaseDep, broker: BrokerDep, _: CanManage
) -> Response:
    async with db.unit_of_work() as uow:
        await handlers.remove_endpoint(uow, webhook_id)
    # Removal needs no broker: while it is away, the periodic reconciliation unbinds later.
    if broker is not None:
        await handlers.unbind_unwanted(db, broker)
    return Response(status_code=204)


@router.post("/{webhook_id}/resume", response_model=WebhookRead)
async def resume_webhook(webhook_id: uuid.UUID, db: DatabaseDep, _: CanManage) -> WebhookRead:
    """Active again: what the pause held is sent, from the schedule's first try."""
    async with db.unit_of_work() as uow:
        return WebhookRead.model_validate(await handlers.resume(uow, webhook_id))


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    webhook_id: uuid.UUID,
    db: DatabaseDep,
    _: CanManage,
    status: DeliveryStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeliveryRead]:
    """The delivery log, newest first: each event's status, tries and the last answer."""
    key = decode_cursor(cursor, PAGE_KEY) if cursor else None
    async with db.unit_of_work() as uow:
        await handlers.endpoint(uow, webhook_id)
        rows = await repo.delivery_page(
            uow.session, webhook_id, status=status, limit=limit, key=key
        )
    items, next_cursor = page_of(rows, limit, lambda row: (row.created_at, row.id))
    return Page(items=[DeliveryRead.model_validate(row) for row in items], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryRead,
    status_code=202,
)
async def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, db: DatabaseDep, _: CanManage
) -> DeliveryRead:
    """Send this delivery again (a receiver that lost it, or one that failed for good)."""
    async with db.unit_of_work() as uow:
        return DeliveryRead.model_validate(await handlers.redeliver(uow, webhook_id, delivery_id))
