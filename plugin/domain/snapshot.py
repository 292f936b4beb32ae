"""The platform-neutral order: what the shop platform says was ordered, shipped and refunded.

Platform adapters (Saleor, Shopify, ...) map their payloads to these types; the planner
only ever sees these. All amounts are integer minor units in ``Order.currency``, gross
(tax included). Tax rates are basis points: 2500 = 25 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property


class LineType(StrEnum):
    """Klarna's order-line types that KOM produces."""

    PHYSICAL = "physical"
    DIGITAL = "digital"
    SHIPPING_FEE = "shipping_fee"
    GIFT_CARD = "gift_card"
    STORE_CREDIT = "store_credit"
    SURCHARGE = "surcharge"
    DISCOUNT = "discount"


@dataclass(frozen=True)
class OrderLine:
    """One line of the order as sold.

    ``total_amount`` is after the line's own discount; ``quantity * unit_price -
    total_amount`` is the line discount and must not be negative.
    """

    id: str
    name: str
    quantity: int
    unit_price: int
    total_amount: int
    tax_rate: int
    total_tax_amount: int
    sku: str | None = None
    variant: str | None = None
    type: LineType = LineType.PHYSICAL

    @property
    def total_discount_amount(self) -> int:
        return self.quantity * self.unit_price - self.total_amount


@dataclass(frozen=True)
class Shipping:
    """The order's shipping fee (gross)."""

    name: str
    amount: int
    tax_rate: int
    tax_amount: int
    method: str | None = None


@dataclass(frozen=True)
class OrderDiscount:
    """An order-level discount not already folded into line prices (gross, positive)."""

    id: str
    name: str
    amount: int


@dataclass(frozen=True)
class GiftCardPayment:
    """Part of the order paid with a gift card or store credit, outside Klarna."""

    id: str
    amount: int
    code: str | None = None
    store_credit: bool = False


@dataclass(frozen=True)
class ShipmentLine:
    line_id: str
    quantity: int


@dataclass(frozen=True)
class Tracking:
    company: str | None = None
    number: str | None = None
    uri: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class Shipment:
    """A parcel the merchant sent, holding what it still holds (returned units leave it).

    Each becomes exactly one capture, except units that an earlier capture already paid for
    (a parcel cancelled after its capture, then sent again).
    """

    id: str
    created_at: datetime
    lines: tuple[ShipmentLine, ...]
    tracking: Tracking | None = None
    number: str | None = None


@dataclass(frozen=True)
class RefundLine:
    """Returned units of one order line; ``shipment_id`` is the parcel they came from, if known."""

    line_id: str
    quantity: int
    shipment_id: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    """A refund the merchant granted on the platform.

    ``amount`` is what the platform wants refunded through the provider; ``None`` means
    "exactly the value of the returned lines (and shipping)". With no lines it is an
    amount-only (goodwill) refund.
    """

    id: str
    created_at: datetime
    lines: tuple[RefundLine, ...] = ()
    include_shipping: bool = False
    amount: int | None = None
    reason: str | None = None
    requested_amount: int | None = None
    """What the platform's request itself allows, when it differs from ``amount`` (Saleor caps a
    grant made before the capture was reported, then asks for the whole charged amount)."""


@dataclass(frozen=True)
class Order:
    """A snapshot of one platform order, taken fresh before every plan."""

    id: str
    currency: str
    lines: tuple[OrderLine, ...]
    number: str | None = None
    shipping: Shipping | None = None
    discounts: tuple[OrderDiscount, ...] = ()
    gift_cards: tuple[GiftCardPayment, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    refunds: tuple[RefundRequest, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    returned: tuple[ShipmentLine, ...] = ()
    """Units the platform records as come back (returned, replaced), wherever they shipped from."""
    cancelled_shipments: tuple[Shipment, ...] = ()
    """Shipments cancelled after they were made, with the units they held then: those never left."""
    cancelled: bool = False
    """The order is cancelled: nothing more ships, the rest of the authorization is freed."""
    shipping_refunded: bool = False
    """The merchant granted the shipping fee back: if it was not captured yet, it never will be."""

    def line(self, line_id: str) -> OrderLine | None:
        return self._lines_by_id.get(line_id)

    @cached_property
    def _lines_by_id(self) -> dict[str, OrderLine]:
        """The first line of each id (the planner looks lines up once per parcel and return)."""
        index: dict[str, OrderLine] = {}
        for line in self.lines:
            index.setdefault(line.id, line)
        return index
