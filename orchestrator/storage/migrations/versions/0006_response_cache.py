"""the response cache, and which recorded answers were replayed from it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:25:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_response_cache_expires_at", "response_cache", ["expires_at"])
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cached_from", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("cached_from")
    op.drop_index("ix_response_cache_expires_at", table_name="response_cache")
    op.drop_table("response_cache")
