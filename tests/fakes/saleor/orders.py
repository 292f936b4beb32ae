"""Order arithmetic the way Saleor does it for prices entered gross with flat tax rates.

- A line's total is ``unit gross × quantity``; ``net = gross / (1 + rate)`` rounded half
  up; ``tax = gross - net``. The unit price is ``total / quantity`` per component.
- A manual order-level discount (FIXED, gross) is split between subtotal and shipping in
  proportion to their gross amounts, and the subtotal part over the lines in proportion to
  their undiscounted totals, the last line taking the rounding rest (Saleor's
  ``propagate_order_discount_on_order_lines_prices``).
- The order status follows Saleor's ``determine_order_status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .money import net_from_gross, split_proportionally, to_decimal, to_minor
from .state import Order, OrderLine, Store, Transaction

__all__ = [
    "LineSpec",
    "OrderTotals",
    "build_lines",
    "order_status",
    "order_totals",
    "parse_line_spec",
    "unit_price",
]


@dataclass(frozen=True)
class LineSpec:
    """One line for ``create_order``: unit price is gross (tax included), rate a fraction."""

    sku: str | None
    name: str
    quantity: int
    unit_gross: object  # major units: "30.00", Decimal, int or float
    tax_rate: object = "0"
    variant_name: str = ""
    is_gift: bool = False
    is_shipping_required: bool = True


def parse_line_spec(spec: LineSpec | Sequence[object]) -> LineSpec:
    if isinstance(spec, LineSpec):
        return spec
    if len(spec) not in (4, 5):
        raise ValueError(f"a line is (sku, name, quantity, unit_gross[, tax_rate]), got {spec!r}")
    sku, name, quantity, unit_gross, *rest = spec
    if not isinstance(quantity, int) or quantity <= 0:
        raise ValueError(f"quantity must be a positive int, got {quantity!r}")
    return LineSpec(
        sku=None if sku is None else str(sku),
        name=str(name),
        quantity=quantity,
        unit_gross=unit_gross,
        tax_rate=rest[0] if rest else "0",
    )


def build_lines(
    order_uuid: str,
    specs: Sequence[LineSpec],
    currency: str,
    subtotal_discount: int,
    new_uuid: Iterable[str],
    variant_pks: Iterable[int],
) -> list[OrderLine]:
    undiscounted = [to_minor(spec.unit_gross, currency) * spec.quantity for spec in specs]
    if subtotal_discount > sum(undiscounted):
        raise ValueError("the order discount is larger than the order")
    shares = split_proportionally(subtotal_discount, undiscounted)
    lines = []
    for spec, total, share, uuid, variant_pk in zip(
        specs, undiscounted, shares, new_uuid, variant_pks, strict=False
    ):
        rate = to_decimal(spec.tax_rate)
        gross = total - share
        lines.append(
            OrderLine(
                uuid=uuid,
                order_uuid=order_uuid,
                variant_pk=variant_pk,
                product_name=spec.name,
                variant_name=spec.variant_name,
                sku=spec.sku,
                quantity=spec.quantity,
                tax_rate=rate,
                undiscounted_unit_gross=to_minor(spec.unit_gross, currency),
                total_gross=gross,
                total_net=net_from_gross(gross, rate),
                is_gift=spec.is_gift,
                is_shipping_required=spec.is_shipping_required,
            )
        )
    return lines


def _div(value: int, quantity: int) -> int:
    return int((Decimal(value) / quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def unit_price(line: OrderLine) -> tuple[int, int]:
    """(gross, net) of one unit: Saleor divides each component of the total by the quantity."""
    return _div(line.total_gross, line.quantity), _div(line.total_net, line.quantity)


@dataclass(frozen=True)
class OrderTotals:
    subtotal_gross: int
    subtotal_net: int
    total_gross: int
    total_net: int
    undiscounted_total_gross: int
    undiscounted_total_net: int
    authorized: int
    charged: int
    refunded: int
    canceled: int
    authorize_pending: int
    charge_pending: int
    refund_pending: int
    cancel_pending: int
    granted: int

    @property
    def balance(self) -> int:
        return self.charged - (self.total_gross - self.granted)

    @property
    def remaining_grant(self) -> int:
        return max(self.granted - self.refunded, 0)

    @property
    def charge_status(self) -> str:
        due = max(self.total_gross - self.granted, 0)
        if self.charged <= 0:
            return "FULL" if due == 0 else "NONE"
        if self.charged < due:
            return "PARTIAL"
        return "FULL" if self.charged == due else "OVERCHARGED"

    @property
    def authorize_status(self) -> str:
        due = max(self.total_gross - self.granted, 0)
        covered = self.authorized + self.charged
        if due == 0 or covered >= due:
            return "FULL"
        return "PARTIAL" if covered > 0 else "NONE"

    @property
    def payment_status(self) -> str:  # the deprecated Payment API status, derived
        if self.refunded > 0:
            return "FULLY_REFUNDED" if self.charged <= 0 else "PARTIALLY_REFUNDED"
        return {
            "NONE": "NOT_CHARGED",
            "PARTIAL": "PARTIALLY_CHARGED",
            "FULL": "FULLY_CHARGED",
            "OVERCHARGED": "FULLY_CHARGED",
        }[self.charge_status]


def order_totals(store: Store, order: Order) -> OrderTotals:
    transactions: list[Transaction] = [store.transactions[t] for t in order.transaction_tokens]
    subtotal_gross = sum(line.total_gross for line in order.lines)
    subtotal_net = sum(line.total_net for line in order.lines)
    undiscounted_gross = sum(line.undiscounted_unit_gross * line.quantity for line in order.lines)
    undiscounted_net = sum(
        net_from_gross(line.undiscounted_unit_gross * line.quantity, line.tax_rate) for line in order.lines
    )
    undiscounted_shipping_net = net_from_gross(order.undiscounted_shipping_gross, order.shipping_tax_rate)
    return OrderTotals(
        subtotal_gross=subtotal_gross,
        subtotal_net=subtotal_net,
        total_gross=subtotal_gross + order.shipping_gross,
        total_net=subtotal_net + order.shipping_net,
        undiscounted_total_gross=undiscounted_gross + order.undiscounted_shipping_gross,
        undiscounted_total_net=undiscounted_net + undiscounted_shipping_net,
        authorized=sum(t.authorized for t in transactions),
        charged=sum(t.charged for t in transactions),
        refunded=sum(t.refunded for t in transactions),
        canceled=sum(t.canceled for t in transactions),
        authorize_pending=sum(t.authorize_pending for t in transactions),
        charge_pending=sum(t.charge_pending for t in transactions),
        refund_pending=sum(t.refund_pending for t in transactions),
        cancel_pending=sum(t.cancel_pending for t in transactions),
        granted=sum(store.granted_refunds[pk].amount for pk in order.granted_refund_pks),
    )


def order_status(order: Order) -> str:
    """Saleor's ``determine_order_status``: returns count RETURNED fulfillment lines."""
    total = sum(line.quantity for line in order.lines)
    fulfilled = sum(line.quantity_fulfilled for line in order.lines)
    returned = sum(
        line.quantity
        for fulfillment in order.fulfillments
        if fulfillment.status in ("RETURNED", "REFUNDED_AND_RETURNED")
        for line in fulfillment.lines
    )
    if total == 0:
        return order.status
    if fulfilled <= 0:
        return "UNFULFILLED"
    if 0 < returned < total:
        return "PARTIALLY_RETURNED"
    if returned == total:
        return "RETURNED"
    return "PARTIALLY_FULFILLED" if fulfilled < total else "FULFILLED"
