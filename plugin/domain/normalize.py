"""Bring an order into the one shape the planner works with.

Order-level discounts (a voucher on the whole basket) are folded into the goods lines
in proportion to their totals (largest remainder, so the shares add up exactly), and each
discounted line's tax is recomputed from its new total. Every capture and refund then
carries its share of the discount on the lines themselves: a shopper returning one item
gets back what that item really cost, and no parcel carries a lonely negative line.
Shipping is not discounted by order-level discounts.
"""

from __future__ import annotations

from dataclasses import replace

from plugin.domain.rounding import split_proportionally, tax_of_gross
from plugin.domain.snapshot import LineType, Order, OrderLine

_GOODS = {LineType.PHYSICAL, LineType.DIGITAL, LineType.SURCHARGE}


class InvalidOrder(ValueError):
    """The platform order cannot be planned (inconsistent quantities or amounts)."""


def order_problems(order: Order) -> list[str]:
    problems = []
    ids = [line.id for line in order.lines]
    if len(ids) != len(set(ids)):
        problems.append("order has duplicate line ids")
    for line in order.lines:
        if line.quantity < 0 or line.total_amount < 0 or line.unit_price < 0:
            problems.append(f"line {line.id} has a negative quantity or amount")
        if not 0 <= line.tax_rate <= 10_000:
            problems.append(f"line {line.id} has a tax rate outside 0..100 %")
    if order.shipping and (order.shipping.amount < 0 or not 0 <= order.shipping.tax_rate <= 10_000):
        problems.append("shipping has a negative amount or a bad tax rate")
    if any(d.amount < 0 for d in order.discounts) or any(g.amount < 0 for g in order.gift_cards):
        problems.append("discounts and gift cards must be positive amounts")
    return problems


def fold_order_discounts(order: Order) -> Order:
    """The same order with order-level discounts spread over its goods lines."""
    discount = sum(d.amount for d in order.discounts)
    if discount == 0:
        return order
    goods = [line for line in order.lines if line.type in _GOODS and line.total_amount > 0]
    available = sum(line.total_amount for line in goods)
    if discount > available:
        raise InvalidOrder(f"order discounts ({discount}) exceed the goods total ({available})")
    shares = dict(
        zip(
            (line.id for line in goods),
            split_proportionally(discount, [line.total_amount for line in goods]),
            strict=True,
        )
    )

    def discounted(line: OrderLine) -> OrderLine:
        share = shares.get(line.id, 0)
        if share == 0:
            return line
        total = line.total_amount - share
        return replace(line, total_amount=total, total_tax_amount=tax_of_gross(total, line.tax_rate))

    return replace(order, lines=tuple(discounted(line) for line in order.lines), discounts=())
