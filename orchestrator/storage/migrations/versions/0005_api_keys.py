"""API keys with their own limits, and the admissions their request rate is counted from

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_api_keys_fingerprint", "api_keys", ["fingerprint"], unique=True)
    op.create_table(
        "key_admissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_key_admissions_fingerprint", "key_admissions", ["fingerprint"])
    op.create_index("ix_key_admissions_at", "key_admissions", ["at"])
    # Spend and tokens per key are read from the recorded requests by key and time.
    op.create_index("ix_items_client_created", "items", ["client", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_items_client_created", table_name="items")
    op.drop_index("ix_key_admissions_at", table_name="key_admissions")
    op.drop_index("ix_key_admissions_fingerprint", table_name="key_admissions")
    op.drop_table("key_admissions")
    op.drop_index("ix_api_keys_fingerprint", table_name="api_keys")
    op.drop_table("api_keys")
