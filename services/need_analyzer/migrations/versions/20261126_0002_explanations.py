"""analyses: secondary intent, explanations, index for re-analysis

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "analyses",
        sa.Column("secondary", sa.String(length=40), nullable=True),
        schema="need_analyzer",
    )
    op.add_column(
        "analyses",
        sa.Column("explanations", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="need_analyzer",
    )
    op.create_index(
        "ix_analyses_analyzer_version",
        "analyses",
        ["analyzer_version"],
        unique=False,
        schema="need_analyzer",
    )


def downgrade() -> None:
    op.drop_index("ix_analyses_analyzer_version", table_name="analyses", schema="need_analyzer")
    op.drop_column("analyses", "explanations", schema="need_analyzer")
    op.drop_column("analyses", "secondary", schema="need_analyzer")
