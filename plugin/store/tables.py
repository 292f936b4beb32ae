"""The database schema (SQLAlchemy Core). One row per installation, per channel setting,
per order KOM tracks, per refund/cancel/charge request the platform sent, per outcome reported,
per needs-attention finding (reconcile, authorization clock), per order's authorization expiry.

Changing a table here needs a migration too: ``alembic -c plugin/store/alembic.ini revision
--autogenerate -m "..."`` writes one into migrations/versions/; tests/store checks that the
migrations and this file describe the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

metadata = MetaData()


class UTC_DateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


installations = Table(
    "installations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(32), nullable=False, default="saleor"),
    Column("api_url", String(512), nullable=False, unique=True),
    Column("app_id", String(255), nullable=False),
    Column("token", LargeBinary, nullable=False),  # encrypted (secrets.py)
    Column("jwks", JSON, nullable=False),
    Column("jwks_fetched_at", UTC_DateTime(), nullable=False),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("updated_at", UTC_DateTime(), nullable=False),
)

channel_settings = Table(
    "channel_settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(255), nullable=False),  # "" = default for every channel
    Column("provider", String(16), nullable=False),
    Column("environment", String(16), nullable=False),
    Column("region", String(8), nullable=False),
    Column("api_key", LargeBinary, nullable=False),  # encrypted
    Column("username", String(255)),
    Column("base_url", String(512)),
    Column("capture_mode", String(32), nullable=False),
    Column("shipping_fee", String(32), nullable=False),
    Column("unknown_origin", String(32), nullable=False),
    Column("updated_at", UTC_DateTime(), nullable=False),
    Column("extend_authorization", Boolean, nullable=False, default=False, server_default=false()),
    # Klarna Payments at checkout (KOM as Saleor's payment app): off unless the merchant turns it on.
    Column("payments_enabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("payment_categories", String(255)),  # comma-separated; empty = every category Klarna offers
    Column("payment_locale", String(16)),  # fixed locale; empty = the checkout's language
    Column("purchase_countries", String(255)),  # comma-separated ISO 3166 codes allowed; empty = any
    UniqueConstraint("installation_id", "channel"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("platform_order_id", String(255), nullable=False),
    Column("order_number", String(64)),
    Column("provider_order_id", String(255)),
    Column("state", String(24), nullable=False),  # pending | in_sync | needs_attention
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("hints", Integer, nullable=False, default=0),  # bumped by every webhook for the order
    Column("due_at", UTC_DateTime(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTC_DateTime()),
    Column("last_error", Text),
    Column("correlation_id", String(64)),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("updated_at", UTC_DateTime(), nullable=False),
    Column("synced_at", UTC_DateTime()),
    UniqueConstraint("installation_id", "platform_order_id"),
    Index("ix_orders_claim", "state", "due_at"),  # the worker's claim
    Index("ix_orders_updated", "updated_at"),  # the dashboard's list
)

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("platform_order_id", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # refund | cancel | charge
    Column("request_id", String(255), nullable=False),
    Column("psp_reference", String(255), nullable=False),
    Column("transaction_id", String(255), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("done", Boolean, nullable=False, default=False),
    # A request is what Saleor sent: its pspReference is new for every request (a grant
    # requested again is a new request, with the same request_id) and the same for a
    # duplicate delivery.
    UniqueConstraint("installation_id", "psp_reference", name="uq_requests_psp_reference"),
    Index("ix_requests_request", "installation_id", "kind", "request_id"),
    Index("ix_requests_transaction", "installation_id", "transaction_id"),
    Index("ix_requests_order", "installation_id", "platform_order_id"),
)

# Outcomes to report to the platform: an outbox. A row is written once (the first wording
# wins, so a retried report says the same thing), sent, and marked sent or refused.
reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("psp_reference", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("message", Text),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("platform_order_id", String(255)),
    Column("transaction_id", String(255)),
    Column("currency", String(3)),
    Column("external_url", Text),
    Column("state", String(16), nullable=False, server_default="sent"),  # pending | sent | refused
    Column("error", Text),
    Column("sent_at", UTC_DateTime()),
    UniqueConstraint("installation_id", "psp_reference", "type"),
    Index("ix_reports_order", "installation_id", "platform_order_id", "state"),
)

# What the provider answered to each action KOM took (or what KOM found on the provider's
# record after a crash), written the moment the answer arrives; reports are made from it.
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("platform_order_id", String(255), nullable=False),
    Column("provider_order_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),  # capture/refund reference, else the action key
    Column("kind", String(16), nullable=False),  # capture | refund | shipping_info | release | cancel
    Column("status", String(16), nullable=False),  # started | done | failed
    Column("amount", Integer, nullable=False),
    Column("provider_id", String(255)),
    Column("request_id", String(255)),
    Column("parcel", Integer),
    Column("capture", String(255)),
    Column("automatic", Boolean, nullable=False),
    Column("message", Text),
    Column("correlation_id", String(64)),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("updated_at", UTC_DateTime(), nullable=False),
    UniqueConstraint("installation_id", "provider_order_id", "key"),
    Index("ix_outcomes_order", "installation_id", "platform_order_id"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("platform_order_id", String(255), nullable=False),
    Column("order_number", String(64)),
    Column("source", String(16), nullable=False),  # reconcile | authorization
    Column("kind", String(48), nullable=False),
    Column("subject", String(255)),
    Column("detail", Text, nullable=False),
    Column("suggested_action", Text, nullable=False),
    Column("found_at", UTC_DateTime(), nullable=False),
    Index("ix_findings_order", "installation_id", "platform_order_id"),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("platform_order_id", String(255), nullable=False),
    Column("provider_order_id", String(255), nullable=False),
    Column("state", String(16), nullable=False),  # settled | ok | warning | expired
    Column("expires_at", UTC_DateTime()),
    Column("unshipped_units", Integer, nullable=False),
    Column("remaining_amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("message", Text),
    Column("checked_at", UTC_DateTime(), nullable=False),
    Column("warned_for", UTC_DateTime()),
    Column("extended_at", UTC_DateTime()),
    Column("extensions", Integer, nullable=False, default=0),
    UniqueConstraint("installation_id", "platform_order_id"),
    Index("ix_authorizations_due", "state", "expires_at"),  # the sweep for expiring authorizations
)

# Klarna Payments sessions KOM opened for a checkout (PAYMENT_GATEWAY_INITIALIZE_SESSION):
# one per checkout, updated when the checkout changes.
payment_sessions = Table(
    "payment_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("checkout_id", String(255), nullable=False),
    Column("session_id", String(255), nullable=False),
    Column("client_token", Text, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("updated_at", UTC_DateTime(), nullable=False),
    UniqueConstraint("installation_id", "checkout_id"),
)

# Each Saleor transaction KOM was asked to initialize: keyed by Saleor's idempotencyKey, the
# answer given (replayed as is), and the provider order it is linked to (one transaction each).
payment_transactions = Table(
    "payment_transactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("transaction_id", String(255), nullable=False),
    Column("checkout_id", String(255), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(24), nullable=False),  # started | action_required | authorized | failed
    Column("provider_order_id", String(255)),
    Column("answer", JSON),
    Column("created_at", UTC_DateTime(), nullable=False),
    Column("updated_at", UTC_DateTime(), nullable=False),
    UniqueConstraint("installation_id", "idempotency_key"),
    UniqueConstraint("installation_id", "provider_order_id"),
    Index("ix_payment_transactions_transaction", "installation_id", "transaction_id"),
)
