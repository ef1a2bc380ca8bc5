"""improvement's schema: what it heard about issues, its follow-ups and its proposals."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.erasure import erasures_table
from shared.tables import add_common_tables

SCHEMA = "improvement"
metadata = service_metadata(SCHEMA)
outbox, inbox, api_keys = add_common_tables(metadata)
erasures = erasures_table(metadata)

# Everything a theme is computed from, filled in by whichever event arrives first.
issues = Table(
    "issues",
    metadata,
    Column("issue_id", Uuid, primary_key=True),
    Column("channel", String(20)),
    Column("customer", JSONB),
    Column("received_at", DateTime(timezone=True)),
    Column("language", String(35)),
    Column("need", Text),
    Column("need_key", Text),
    Column("intent", String(40)),
    # The analysis need and intent come from: an older one arriving late is ignored.
    Column("analyzed_at", DateTime(timezone=True)),
    Column("verdict", String(20)),
    Column("verdict_at", DateTime(timezone=True)),
)
Index("ix_issues_intent_received_at", issues.c.intent, issues.c.received_at)
Index("ix_issues_need_key_received_at", issues.c.need_key, issues.c.received_at)

followups = Table(
    "followups",
    metadata,
    Column("id", Uuid, primary_key=True),
    # One follow-up per issue; null for customer-level feedback.
    Column("issue_id", Uuid, unique=True),
    Column("customer", JSONB),
    Column("channel", String(20)),
    Column("need", Text),
    Column("intent", String(40)),
    Column("verdict", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("status", String(20), nullable=False, server_default=text("'open'")),
    Column("note", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_followups_status_created_at", followups.c.status, followups.c.created_at)

proposals = Table(
    "proposals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("theme_kind", String(10), nullable=False),
    Column("theme_key", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("recommendation", Text, nullable=False),
    Column("priority", Float, nullable=False),
    Column("note", Text),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
)
# One open proposal per theme: new evidence updates it instead of raising another.
Index(
    "uq_proposals_active_theme",
    proposals.c.theme_kind,
    proposals.c.theme_key,
    unique=True,
    postgresql_where=text("status IN ('open', 'accepted', 'in_progress')"),
)

# Themes whose statistics moved, waiting for the theme worker. Messages only append here (no
# conflicts, so no message waits for an evaluation); the worker deletes what it evaluated.
theme_changes = Table(
    "theme_changes",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("theme_kind", String(10), nullable=False),
    Column("theme_key", Text, nullable=False),
)
Index(
    "ix_theme_changes_theme_kind_theme_key", theme_changes.c.theme_kind, theme_changes.c.theme_key
)
