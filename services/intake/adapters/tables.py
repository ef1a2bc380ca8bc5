"""intake's schema. Alembic (services/intake/migrations) creates it; nothing else does."""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.tables import add_common_tables

SCHEMA = "intake"
metadata = service_metadata(SCHEMA)
outbox, inbox, api_keys = add_common_tables(metadata)

customers = Table(
    "customers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200)),
    Column("email", String(320), unique=True),
    Column("phone", String(40), unique=True),
    Column("external_id", String(200), unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("customer_id", Uuid, ForeignKey(customers.c.id), nullable=False),
    Column("subject", String(500)),
    Column("text", Text, nullable=False),
    Column("language", String(35)),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurred_at", DateTime(timezone=True)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("fingerprint", CHAR(64), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution", JSONB),
    UniqueConstraint("channel", "external_id"),
)
Index("ix_issues_customer_id", issues.c.customer_id)
# GET /v1/issues: newest first, paged by (received_at, id).
Index("ix_issues_received_at_id", issues.c.received_at, issues.c.id)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("issue_id", Uuid, ForeignKey(issues.c.id)),
    # Feedback on an issue named by its channel key, kept until that issue arrives.
    Column("issue_channel", String(20)),
    Column("issue_external_id", String(200)),
    Column("customer_id", Uuid, ForeignKey(customers.c.id)),
    Column("rating", JSONB),
    Column("comment", Text),
    Column("channel", String(20)),
    Column("external_id", String(200)),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("fingerprint", CHAR(64), nullable=False),
    UniqueConstraint("channel", "external_id"),
)
Index("ix_feedback_issue_id", feedback.c.issue_id)
Index(
    "ix_feedback_pending_issue",
    feedback.c.issue_channel,
    feedback.c.issue_external_id,
    postgresql_where=feedback.c.issue_id.is_(None),
)
