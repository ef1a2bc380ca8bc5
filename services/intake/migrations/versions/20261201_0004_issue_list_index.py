"""issues listed newest first: an index on (received_at, id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 02:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_issues_received_at_id", "issues", ["received_at", "id"], unique=False, schema="intake"
    )


def downgrade() -> None:
    op.drop_index("ix_issues_received_at_id", table_name="issues", schema="intake")
