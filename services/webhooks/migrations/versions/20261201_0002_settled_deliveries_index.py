"""settled deliveries by age, for the delivery log's retention

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 03:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_settled_updated_at",
        "deliveries",
        ["updated_at"],
        unique=False,
        schema="webhooks",
        postgresql_where=sa.text("status IN ('delivered', 'failed')"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_settled_updated_at", table_name="deliveries", schema="webhooks")
