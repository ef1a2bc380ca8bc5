"""analyses: need source and key, partial analyses

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "analyses", sa.Column("need_source", sa.String(length=10)), schema="need_analyzer"
    )
    op.add_column("analyses", sa.Column("need_key", sa.String(length=60)), schema="need_analyzer")
    op.add_column("analyses", sa.Column("partial_reason", sa.Text()), schema="need_analyzer")


def downgrade() -> None:
    op.drop_column("analyses", "partial_reason", schema="need_analyzer")
    op.drop_column("analyses", "need_key", schema="need_analyzer")
    op.drop_column("analyses", "need_source", schema="need_analyzer")
