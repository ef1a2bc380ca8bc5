"""theme changes: the queue of themes the theme worker evaluates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "theme_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("theme_kind", sa.String(length=10), nullable=False),
        sa.Column("theme_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_theme_changes")),
        schema="improvement",
    )
    op.create_index(
        "ix_theme_changes_theme_kind_theme_key",
        "theme_changes",
        ["theme_kind", "theme_key"],
        unique=False,
        schema="improvement",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_theme_changes_theme_kind_theme_key", table_name="theme_changes", schema="improvement"
    )
    op.drop_table("theme_changes", schema="improvement")
