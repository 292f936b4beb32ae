"""Requests are keyed by the pspReference KOM answered Saleor with, not by request id.

A granted refund requested again is a new request for Saleor (a new REFUND_REQUEST event)
with the same request id (the grant), so (installation, kind, request_id) can no longer be
unique; (installation, psp_reference) is, and a duplicate delivery still hits it. Indexes
serve the lookups by request id, by transaction and by order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_COLUMNS = ["installation_id", "kind", "request_id"]
_NEW_UNIQUE = "uq_requests_psp_reference"
_INDEXES = {
    "ix_requests_request": ["installation_id", "kind", "request_id"],
    "ix_requests_transaction": ["installation_id", "transaction_id"],
    "ix_requests_order": ["installation_id", "platform_order_id"],
}
# 0001 left the old constraint unnamed; on SQLite, batch mode names reflected constraints
# with this convention so that it can be dropped (PostgreSQL reports its own name).
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    # A database adopted from KOM's create_all days may have any part of this already:
    # do only what is missing.
    found = sa.inspect(op.get_bind())
    uniques = found.get_unique_constraints("requests")
    old = next((u for u in uniques if u["column_names"] == _OLD_COLUMNS), None)
    have_new = any(u["name"] == _NEW_UNIQUE for u in uniques)
    indexes = {index["name"] for index in found.get_indexes("requests")}
    with op.batch_alter_table("requests", naming_convention=_NAMING) as batch:
        if old is not None:
            batch.drop_constraint(
                old["name"] or "uq_requests_installation_id_kind_request_id", type_="unique"
            )
        if not have_new:
            batch.create_unique_constraint(_NEW_UNIQUE, ["installation_id", "psp_reference"])
    for name, columns in _INDEXES.items():
        if name not in indexes:
            op.create_index(name, "requests", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint(_NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint("uq_requests_installation_id_kind_request_id", _OLD_COLUMNS)
