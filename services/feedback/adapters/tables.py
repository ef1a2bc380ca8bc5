"""feedback's schema: what it heard about issues, the feedback itself, and one verdict per issue."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Index, SmallInteger, String, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.erasure import erasures_table
from shared.tables import add_common_tables

SCHEMA = "feedback"
metadata = service_metadata(SCHEMA)
outbox, inbox, api_keys = add_common_tables(metadata)
erasures = erasures_table(metadata)

issues = Table(
    "issues",
    metadata,
    Column("issue_id", Uuid, primary_key=True),
    Column("channel", String(20)),
    Column("customer", JSONB),
    Column("intent", String(40)),
    Column("received_at", DateTime(timezone=True)),
    # The analysis the intent comes from: an older one arriving late is ignored.
    Column("analyzed_at", DateTime(timezone=True)),
)

feedback = Table(
    "feedback",
    metadata,
    Column("feedback_id", Uuid, primary_key=True),
    Column("issue_id", Uuid),
    Column("customer", JSONB),
    Column("rating", JSONB),
    Column("comment", Text),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
)
Index("ix_feedback_issue_id", feedback.c.issue_id)

# One row per issue (or per customer-level feedback): the current verdict, the latest NPS and
# CES answers, and the issue's channel and intent, so that reports read one table.
verdicts = Table(
    "verdicts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("issue_id", Uuid, unique=True),
    Column("customer", JSONB),
    Column("verdict", String(20), nullable=False),
    Column("score", Float, nullable=False),
    Column("source", String(10), nullable=False),
    Column("basis", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(20)),
    Column("intent", String(40)),
    Column("nps", SmallInteger),
    Column("nps_at", DateTime(timezone=True)),
    Column("ces", SmallInteger),
    Column("ces_at", DateTime(timezone=True)),
)
# Reports filter on the period and read only these columns: an index-only scan.
Index(
    "ix_verdicts_report",
    verdicts.c.decided_at,
    postgresql_include=["verdict", "channel", "intent", "nps", "ces"],
)
