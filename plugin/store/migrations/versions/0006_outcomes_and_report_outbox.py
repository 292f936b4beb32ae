"""Outcomes recorded as the provider answers, and the reports table as an outbox (pending,
sent or refused, with what is needed to send it again).

Every step checks whether it was done already: SQLite runs DDL outside a transaction, so a
migration killed halfway (see the ``mid-migration`` crash point) is simply run again.
Rows reported before this revision were sent: they get state ``sent``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from plugin.service.crashpoints import crash_point

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPORT_COLUMNS = (
    ("platform_order_id", lambda: sa.Column("platform_order_id", sa.String(length=255), nullable=True)),
    ("transaction_id", lambda: sa.Column("transaction_id", sa.String(length=255), nullable=True)),
    ("currency", lambda: sa.Column("currency", sa.String(length=3), nullable=True)),
    ("external_url", lambda: sa.Column("external_url", sa.Text(), nullable=True)),
    ("state", lambda: sa.Column("state", sa.String(length=16), server_default="sent", nullable=False)),
    ("error", lambda: sa.Column("error", sa.Text(), nullable=True)),
    ("sent_at", lambda: sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True)),
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("outcomes"):
        op.create_table(
            "outcomes",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("installation_id", sa.Integer(), nullable=False),
            sa.Column("platform_order_id", sa.String(length=255), nullable=False),
            sa.Column("provider_order_id", sa.String(length=255), nullable=False),
            sa.Column("key", sa.String(length=255), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("amount", sa.Integer(), nullable=False),
            sa.Column("provider_id", sa.String(length=255), nullable=True),
            sa.Column("request_id", sa.String(length=255), nullable=True),
            sa.Column("parcel", sa.Integer(), nullable=True),
            sa.Column("capture", sa.String(length=255), nullable=True),
            sa.Column("automatic", sa.Boolean(), nullable=False),
            sa.Column("message", sa.Text(), nullable=True),
            sa.Column("correlation_id", sa.String(length=64), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["installation_id"], ["installations.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("installation_id", "provider_order_id", "key"),
        )
    if "ix_outcomes_order" not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("outcomes")}:
        op.create_index("ix_outcomes_order", "outcomes", ["installation_id", "platform_order_id"])
    crash_point("mid-migration")
    have = {column["name"] for column in inspector.get_columns("reports")}
    for name, column in _REPORT_COLUMNS:
        if name not in have:
            op.add_column("reports", column())
    if "ix_reports_order" not in {i["name"] for i in inspector.get_indexes("reports")}:
        op.create_index("ix_reports_order", "reports", ["installation_id", "platform_order_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_reports_order", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        for name, _ in reversed(_REPORT_COLUMNS):
            batch.drop_column(name)
    op.drop_index("ix_outcomes_order", table_name="outcomes")
    op.drop_table("outcomes")
