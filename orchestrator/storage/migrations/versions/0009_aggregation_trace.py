"""aggregations keep the aggregator's own trace: a cascade's steps, a policy's turns

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty lists by default: aggregations stored before read back as having no trace.
    with op.batch_alter_table("aggregations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("steps", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("turns", sa.JSON(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("aggregations", schema=None) as batch_op:
        batch_op.drop_column("turns")
        batch_op.drop_column("steps")
