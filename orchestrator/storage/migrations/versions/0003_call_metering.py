"""model calls record their metering: flags and the backend's own numbers where capped

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("reported_tokens_out", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reported_cost", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.drop_column("reported_cost")
        batch_op.drop_column("reported_tokens_out")
        batch_op.drop_column("flags")
