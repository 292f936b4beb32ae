"""Indexes for the order queue: the worker's claim (state, due_at) and the dashboard's list
(updated_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_claim", "orders", ["state", "due_at"])
    op.create_index("ix_orders_updated", "orders", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_updated", table_name="orders")
    op.drop_index("ix_orders_claim", table_name="orders")
