"""need_analyzer's schema. The raw text is kept so that stored issues can be re-analysed."""

from __future__ import annotations

from sqlalchemy import ARRAY, Column, DateTime, Float, Index, String, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.erasure import erasures_table
from shared.tables import add_common_tables

SCHEMA = "need_analyzer"
metadata = service_metadata(SCHEMA)
outbox, inbox, api_keys = add_common_tables(metadata)
erasures = erasures_table(metadata)

analyses = Table(
    "analyses",
    metadata,
    Column("issue_id", Uuid, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("customer", JSONB, nullable=False),
    Column("subject", String(500)),
    Column("text", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("language", String(35), nullable=False),
    Column("need", Text),
    Column("need_source", String(10)),
    Column("need_key", String(60)),
    Column("intent", String(40), nullable=False),
    Column("secondary", String(40)),
    Column("sentiment_label", String(10), nullable=False),
    Column("sentiment_score", Float, nullable=False),
    Column("urgency", String(10), nullable=False),
    Column("keywords", ARRAY(String(100)), nullable=False),
    Column("explanations", JSONB),
    Column("analyzer_version", String(40), nullable=False),
    Column("analyzed_at", DateTime(timezone=True), nullable=False),
    Column("partial_reason", Text),
)
Index("ix_analyses_received_at", analyses.c.received_at)
Index("ix_analyses_analyzer_version", analyses.c.analyzer_version)
