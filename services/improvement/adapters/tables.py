"""improvement's schema: context heard about issues, and the follow-ups it raised."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table, Text, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.tables import add_common_tables

SCHEMA = "improvement"
metadata = service_metadata(SCHEMA)
outbox, inbox, api_keys = add_common_tables(metadata)

issues = Table(
    "issues",
    metadata,
    Column("issue_id", Uuid, primary_key=True),
    Column("channel", String(20)),
    Column("customer", JSONB),
    Column("language", String(35)),
    Column("need", Text),
    Column("intent", String(40)),
)

followups = Table(
    "followups",
    metadata,
    Column("id", Uuid, primary_key=True),
    # One follow-up per issue; null for customer-level feedback.
    Column("issue_id", Uuid, unique=True),
    Column("customer", JSONB),
    Column("need", Text),
    Column("intent", String(40)),
    Column("verdict", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("status", String(20), nullable=False, server_default=text("'open'")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
