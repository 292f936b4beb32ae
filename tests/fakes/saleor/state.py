"""The fake's in-memory records. Money is in integer minor units of the owner's currency.

Plain dataclasses keyed by their Saleor primary key; the presenters (``presenters.py``)
turn them into GraphQL objects and the services mutate them under ``Store.lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from graphql import DocumentNode

__all__ = [
    "App",
    "Channel",
    "Fulfillment",
    "FulfillmentLine",
    "GiftCard",
    "GiftCardEvent",
    "GrantedRefund",
    "GrantedRefundLine",
    "Order",
    "OrderLine",
    "Principal",
    "SaleorError",
    "Store",
    "Transaction",
    "TransactionEvent",
    "Webhook",
]

# Who did something: ("User", pk) for the Dashboard's staff user, ("App", pk) for an app.
Principal = tuple[str, int]

STAFF_USER_PK = 1
STAFF_EMAIL = "admin@example.com"


class SaleorError(Exception):
    """What a Saleor mutation answers in its ``errors`` list (``code`` is the enum name)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


@dataclass
class Webhook:
    pk: int
    app_pk: int
    name: str
    target_url: str
    query: str
    document: DocumentNode
    async_events: list[str]
    sync_events: list[str]
    is_active: bool = True
    custom_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class App:
    pk: int
    identifier: str
    name: str
    permissions: list[str]
    token: str | None
    manifest: dict[str, Any]
    manifest_url: str
    created: datetime
    webhooks: list[Webhook] = field(default_factory=list)
    is_active: bool = True
    is_installed: bool = False
    deleted: bool = False


@dataclass
class Channel:
    pk: int
    slug: str
    currency: str
    country: str = "SE"


@dataclass
class OrderLine:
    uuid: str
    order_uuid: str
    variant_pk: int
    product_name: str
    variant_name: str
    sku: str | None
    quantity: int
    tax_rate: Decimal
    undiscounted_unit_gross: int
    total_gross: int  # after line and order-level discounts, like Saleor's totalPrice
    total_net: int
    is_gift: bool = False
    is_shipping_required: bool = True
    quantity_fulfilled: int = 0


@dataclass
class FulfillmentLine:
    pk: int
    order_line_uuid: str
    quantity: int


@dataclass
class Fulfillment:
    pk: int
    order_uuid: str
    fulfillment_order: int
    status: str
    created: datetime
    tracking_number: str = ""
    lines: list[FulfillmentLine] = field(default_factory=list)


@dataclass
class TransactionEvent:
    pk: int
    transaction_token: str
    type: str
    psp_reference: str
    amount: int
    created_at: datetime
    message: str = ""
    external_url: str = ""
    app_pk: int | None = None
    user_pk: int | None = None
    include_in_calculations: bool = True
    idempotency_key: str | None = None
    related_granted_refund_pk: int | None = None


@dataclass
class Transaction:
    token: str
    order_uuid: str
    currency: str
    name: str
    psp_reference: str
    created_at: datetime
    modified_at: datetime
    app_pk: int | None = None
    app_identifier: str | None = None
    user_pk: int | None = None
    message: str = ""
    external_url: str = ""
    actions: list[str] = field(default_factory=list)
    events: list[TransactionEvent] = field(default_factory=list)
    # Derived from events by transactions.recalculate(), like Saleor's columns.
    authorized: int = 0
    charged: int = 0
    refunded: int = 0
    canceled: int = 0
    authorize_pending: int = 0
    charge_pending: int = 0
    refund_pending: int = 0
    cancel_pending: int = 0


@dataclass
class GrantedRefundLine:
    pk: int
    order_line_uuid: str
    quantity: int
    reason: str | None = None


@dataclass
class GrantedRefund:
    pk: int
    order_uuid: str
    transaction_token: str
    amount: int
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    shipping_costs_included: bool = False
    lines: list[GrantedRefundLine] = field(default_factory=list)
    status: str = "NONE"
    user_pk: int | None = STAFF_USER_PK


@dataclass
class GiftCardEvent:
    """A gift card's history entry. ``USED_IN_ORDER`` carries the balance before and after
    (``parameters.balance`` in Saleor: ``old_current_balance``, ``current_balance``)."""

    pk: int
    type: str
    date: datetime
    order_uuid: str | None = None
    current_balance: int | None = None
    old_current_balance: int | None = None


@dataclass
class GiftCard:
    pk: int
    code: str
    currency: str
    initial_balance: int
    current_balance: int
    created: datetime
    last_used_on: datetime | None = None
    is_active: bool = True
    used_by_email: str | None = None
    events: list[GiftCardEvent] = field(default_factory=list)


@dataclass
class Order:
    uuid: str
    number: int
    token: str
    channel_pk: int
    currency: str
    created: datetime
    updated_at: datetime
    lines: list[OrderLine]
    shipping_gross: int = 0
    shipping_net: int = 0
    undiscounted_shipping_gross: int = 0
    shipping_tax_rate: Decimal = Decimal(0)
    shipping_method_name: str | None = None
    discount: int = 0  # manual order-level discount (gross), spread over lines and shipping
    status: str = "UNFULFILLED"
    user_email: str = "customer@example.com"
    fulfillments: list[Fulfillment] = field(default_factory=list)
    transaction_tokens: list[str] = field(default_factory=list)
    granted_refund_pks: list[int] = field(default_factory=list)
    gift_card_pks: list[int] = field(default_factory=list)  # ``order.gift_cards`` (used to pay)
    next_fulfillment_order: int = 1


@dataclass
class Store:
    """Every record of one fake Saleor, and the lock that guards them.

    The GraphQL endpoint (uvicorn's thread) and the test's driver calls (the test's thread)
    both mutate state, so every read-modify-write happens under ``lock``; HTTP is never
    sent while holding it (KOM calls back into the fake while handling a webhook).
    """

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    lock: threading.RLock = field(default_factory=threading.RLock)
    apps: dict[int, App] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    order_lines: dict[str, OrderLine] = field(default_factory=dict)
    fulfillments: dict[int, Fulfillment] = field(default_factory=dict)
    transactions: dict[str, Transaction] = field(default_factory=dict)
    events: dict[int, TransactionEvent] = field(default_factory=dict)
    granted_refunds: dict[int, GrantedRefund] = field(default_factory=dict)
    gift_cards: dict[int, GiftCard] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)

    def next_pk(self, kind: str) -> int:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

    def now(self) -> datetime:
        return self.clock()

    def fulfillment_line(self, pk: int) -> tuple[Fulfillment, FulfillmentLine] | None:
        for fulfillment in self.fulfillments.values():
            for line in fulfillment.lines:
                if line.pk == pk:
                    return fulfillment, line
        return None

    def owner_app(self, transaction: Transaction) -> App | None:
        """Saleor's owner: ``transaction.app``, else an active app with the same identifier."""
        app = self.apps.get(transaction.app_pk) if transaction.app_pk is not None else None
        if app is not None and not app.deleted:
            return app
        if transaction.app_identifier:
            for candidate in self.apps.values():
                if (
                    candidate.identifier == transaction.app_identifier
                    and candidate.is_active
                    and not candidate.deleted
                ):
                    return candidate
        return None

    def active_apps(self) -> list[App]:
        return [app for app in self.apps.values() if app.is_active and not app.deleted]
