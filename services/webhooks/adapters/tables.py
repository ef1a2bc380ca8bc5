"""webhooks' schema: the registered endpoints and one delivery per (endpoint, event)."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.erasure import erasures_table
from shared.tables import add_common_tables

SCHEMA = "webhooks"
metadata = service_metadata(SCHEMA)
outbox, inbox, api_keys = add_common_tables(metadata)
erasures = erasures_table(metadata)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text),
    # Routing-key patterns (``improvement.*``, ``issue.#``).
    Column("events", ARRAY(Text), nullable=False),
    # Optional filters: only events of these channels / intents (null: any).
    Column("channels", ARRAY(Text)),
    Column("intents", ARRAY(Text)),
    Column("secret", Text, nullable=False),
    Column("max_in_flight", Integer, nullable=False),
    # active, or paused (by the circuit, until someone resumes it).
    Column("status", String(10), nullable=False, server_default=text("'active'")),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("paused_reason", Text),
    Column("paused_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_endpoints_created_at_id", endpoints.c.created_at, endpoints.c.id)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("endpoint_id", Uuid, ForeignKey(endpoints.c.id, ondelete="CASCADE"), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", String(200), nullable=False),
    # The CloudEvent, as it is sent.
    Column("event", JSONB, nullable=False),
    # pending (to send, or waiting for its retry), delivered, failed (schedule exhausted),
    # paused (its endpoint is paused; sent again when it resumes).
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # The job chain that may act on this delivery: a job of an older chain (a duplicate, or
    # one overtaken by a redelivery by hand) is dropped.
    Column("chain", Uuid),
    Column("enqueued_at", DateTime(timezone=True)),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("last_response", Text),
    Column("last_duration_ms", Float),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("endpoint_id", "event_id"),
)
Index(
    "ix_deliveries_endpoint_id_created_at_id",
    deliveries.c.endpoint_id,
    deliveries.c.created_at,
    deliveries.c.id,
)
# What the dispatcher has yet to hand to the broker.
Index(
    "ix_deliveries_to_enqueue",
    deliveries.c.created_at,
    postgresql_where=text("status = 'pending' AND enqueued_at IS NULL"),
)
# What the retention sweep deletes.
Index(
    "ix_deliveries_settled_updated_at",
    deliveries.c.updated_at,
    postgresql_where=text("status IN ('delivered', 'failed')"),
)
