"""A Saleor order (``graphql/order.graphql``, or the ``order`` of a richer payload) as KOM's
platform-neutral ``Order``.

Mapping decisions, each forced by how Saleor models orders:

- Lines: ``unit_price`` is the undiscounted gross unit price and ``total_amount`` the gross
  ``totalPrice``, which already contains line discounts *and* the line's share of
  order-level discounts (vouchers, promotions, manual discounts). So no ``OrderDiscount``
  is produced. Saleor computes ``unitPrice = totalPrice / quantity`` and rounds, so
  ``unit_price * quantity`` can fall a cent short of the total; the unit price is then
  raised to the total divided by the quantity, rounded up, so the discount is never negative.
- Shipments: only ``FULFILLED`` fulfillments, holding what they still hold.
  WAITING_FOR_APPROVAL has not shipped; CANCELED ones are listed as cancelled shipments
  (their goods never left); RETURNED / REPLACED / REFUNDED_AND_RETURNED hold the *returned*
  units, which Saleor moves out of the original fulfillment into a new one (deleting an
  original left empty) without saying where they came from — the planner works that out
  from what each capture holds (plugin/domain/origins.py). REFUNDED (the legacy refund of
  products without a return) is neither.
- The order status CANCELED marks the order cancelled; a granted refund that includes shipping
  (and did not fail) marks shipping as refunded, so a fee not captured yet never will be.
- Gift cards: what each spent on this order (``oldCurrentBalance - currentBalance`` of its
  USED_IN_ORDER events); payments by other apps (their authorized + charged amounts) paid
  part of the order outside Klarna too. Both become ``GiftCardPayment``s.
- Refunds stay empty: KOM keeps the refund requests it received itself (Saleor has no
  webhook for grants and its grant amounts are capped silently, see payloads.py).
- KOM's transaction is the one ``createdBy`` KOM's app (this installation's App id, or the
  manifest's identifier after a reinstall); its ``pspReference`` is the
  provider (Klarna) order id.

Amounts go through ``to_minor`` only (exact, refuses sub-cent values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from plugin.domain.money import MoneyError, to_minor
from plugin.domain.snapshot import (
    GiftCardPayment,
    LineType,
    Order,
    OrderLine,
    Shipment,
    ShipmentLine,
    Shipping,
    Tracking,
)

__all__ = ["SaleorOrder", "SnapshotError", "order_snapshot"]

_SHIPPED = "FULFILLED"
_CANCELLED = "CANCELED"
_CAME_BACK = frozenset({"RETURNED", "REPLACED", "REFUNDED_AND_RETURNED"})


class SnapshotError(ValueError):
    """The Saleor order cannot be represented exactly (bad amounts, inconsistent data)."""


@dataclass(frozen=True)
class SaleorOrder:
    """The neutral order plus what KOM needs to know about Saleor's side of it."""

    order: Order
    channel: str | None
    transaction_id: str | None
    provider_order_id: str | None
    charged: int
    currency: str
    created_at: datetime | None = None


# The manifest id: Saleor keeps a transaction with the app *identifier* across a reinstall
# (the new installation has a new App id), so either marks a transaction as KOM's.
APP_IDENTIFIER = "app.kom.order-management"


def created_by_kom(creator: object, app_id: str) -> bool:
    """Whether a transaction's ``createdBy`` is this KOM installation (or an earlier one)."""
    if not isinstance(creator, dict) or creator.get("__typename", "App") != "App":
        return False
    return creator.get("id") == app_id or creator.get("identifier") == APP_IDENTIFIER


def order_snapshot(order: dict[str, Any], *, app_id: str) -> SaleorOrder:
    """Map one Saleor order (the ``order`` object, not the query's ``data``)."""
    if not isinstance(order, dict):
        raise SnapshotError("order is not a JSON object")
    order_id = _text(order, "id", "order")
    where = f"order {order_id}"
    currency = _currency(order, where)
    lines = tuple(_line(raw, currency, where) for raw in _list(order, "lines", where))
    known = {line.id for line in lines}
    fulfillments = [_dict(raw, where) for raw in _list(order, "fulfillments", where)]
    shipments = tuple(
        shipment
        for raw in fulfillments
        if raw.get("status") == _SHIPPED
        for shipment in [_shipment(raw, known, where)]
        if shipment.lines
    )
    cancelled = tuple(_shipment(raw, known, where) for raw in fulfillments if raw.get("status") == _CANCELLED)
    returned = tuple(
        item
        for raw in fulfillments
        if raw.get("status") in _CAME_BACK
        for item in _shipment(raw, known, where).lines
    )
    transaction = _own_transaction(order, app_id, where)
    charged = 0
    if transaction is not None:
        charged = _amount(transaction.get("chargedAmount"), currency, f"{where} transaction chargedAmount")
    channel = order.get("channel")
    number = order.get("number")
    return SaleorOrder(
        order=Order(
            id=order_id,
            currency=currency,
            lines=lines,
            number=None if number is None else str(number),
            shipping=_shipping(order, currency, where),
            gift_cards=_gift_cards(order, transaction, currency, where),
            shipments=shipments,
            returned=returned,
            cancelled_shipments=cancelled,
            cancelled=order.get("status") == _CANCELLED,
            shipping_refunded=any(
                isinstance(grant, dict)
                and grant.get("shippingCostsIncluded")
                and grant.get("status") != "FAIL"
                for grant in order.get("grantedRefunds") or ()
            ),
        ),
        channel=channel.get("slug") if isinstance(channel, dict) else None,
        transaction_id=None if transaction is None else _text(transaction, "id", where),
        provider_order_id=(transaction.get("pspReference") or None) if transaction is not None else None,
        charged=charged,
        currency=currency,
        created_at=_datetime(order["created"], f"{where} created") if order.get("created") else None,
    )


def _line(raw: object, currency: str, where: str) -> OrderLine:
    line = _dict(raw, where)
    line_id = _text(line, "id", where)
    where = f"{where} line {line_id}"
    quantity = line.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        raise SnapshotError(f"{where}: quantity {quantity!r} is not a non-negative integer")
    unit_money = line.get("undiscountedUnitPrice") or line.get("unitPrice")
    unit_price = _amount(_gross(unit_money, where), currency, f"{where} unit price")
    total_price = _dict(line.get("totalPrice"), f"{where} totalPrice")
    total = _amount(_gross(total_price, where), currency, f"{where} total")
    tax = _amount(total_price.get("tax"), currency, f"{where} tax")
    if unit_price * quantity < total:
        if quantity == 0:
            raise SnapshotError(f"{where}: a total of {total} on zero units")
        unit_price = -(-total // quantity)  # Saleor's rounded unitPrice; never a negative discount
    name = line.get("productName") or line.get("variantName") or line.get("productSku") or "Item"
    return OrderLine(
        id=line_id,
        name=str(name),
        quantity=quantity,
        unit_price=unit_price,
        total_amount=total,
        tax_rate=_basis_points(line.get("taxRate"), f"{where} taxRate"),
        total_tax_amount=tax,
        sku=line.get("productSku") or None,
        variant=line.get("variantName") or None,
        type=LineType.DIGITAL if line.get("isShippingRequired") is False else LineType.PHYSICAL,
    )


def _shipping(order: dict[str, Any], currency: str, where: str) -> Shipping | None:
    price = order.get("shippingPrice")
    if not price:
        return None
    amount = _amount(_gross(price, where), currency, f"{where} shipping")
    if amount <= 0:
        return None
    method = order.get("shippingMethodName") or None
    return Shipping(
        name=str(method or "Shipping"),
        amount=amount,
        tax_rate=_basis_points(order.get("shippingTaxRate") or 0, f"{where} shippingTaxRate"),
        tax_amount=_amount(_dict(price, where).get("tax"), currency, f"{where} shipping tax"),
        method=method,
    )


def _shipment(raw: object, known: set[str], where: str) -> Shipment:
    fulfillment = _dict(raw, where)
    fulfillment_id = _text(fulfillment, "id", where)
    where = f"{where} fulfillment {fulfillment_id}"
    lines = []
    for raw_line in fulfillment.get("lines") or ():
        item = _dict(raw_line, where)
        line_id = _text(_dict(item.get("orderLine"), where), "id", where)
        quantity = item.get("quantity")
        if line_id not in known:
            raise SnapshotError(f"{where} ships unknown order line {line_id}")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise SnapshotError(f"{where}: quantity {quantity!r} is not a non-negative integer")
        if quantity:
            lines.append(ShipmentLine(line_id, quantity))
    tracking = fulfillment.get("trackingNumber")
    order_number = fulfillment.get("fulfillmentOrder")
    return Shipment(
        id=fulfillment_id,
        created_at=_datetime(fulfillment.get("created"), f"{where} created"),
        lines=tuple(lines),
        tracking=Tracking(number=str(tracking)) if tracking else None,
        number=None if order_number is None else str(order_number),
    )


def _gift_cards(
    order: dict[str, Any], own: dict[str, Any] | None, currency: str, where: str
) -> tuple[GiftCardPayment, ...]:
    """What gift cards and other apps' payments paid of this order, outside Klarna."""
    order_id = order.get("id")
    paid: list[GiftCardPayment] = []
    for raw in _list(order, "giftCards", where):
        card = _dict(raw, where)
        card_id = _text(card, "id", where)
        spent = 0
        for event in _list(card, "events", f"{where} gift card {card_id}"):
            event = _dict(event, where)
            if event.get("type") != "USED_IN_ORDER" or event.get("orderId") not in (None, order_id):
                continue
            balance = _dict(event.get("balance"), f"{where} gift card {card_id} balance")
            what = f"{where} gift card {card_id} balance"
            before = _amount(balance.get("oldCurrentBalance"), currency, what)
            after = _amount(balance.get("currentBalance"), currency, what)
            spent += max(0, before - after)
        if spent:
            paid.append(GiftCardPayment(card_id, spent, code=card.get("last4CodeChars") or None))
    for raw in order.get("transactions") or ():
        transaction = _dict(raw, where)
        if own is not None and transaction.get("id") == own.get("id"):
            continue
        what = f"{where} transaction {transaction.get('id')}"
        amount = sum(
            _amount(transaction[field], currency, what)
            for field in ("authorizedAmount", "chargedAmount")
            if transaction.get(field) is not None
        )
        if amount:
            paid.append(GiftCardPayment(_text(transaction, "id", where), amount))
    return tuple(paid)


def _own_transaction(order: dict[str, Any], app_id: str, where: str) -> dict[str, Any] | None:
    owned = []
    for raw in order.get("transactions") or ():
        transaction = _dict(raw, where)
        if created_by_kom(transaction.get("createdBy"), app_id):
            owned.append(transaction)
    if len(owned) > 1:
        # Two Klarna orders behind one Saleor order: guessing could capture the wrong one.
        raise SnapshotError(f"{where} has {len(owned)} transactions created by KOM's app; expected one")
    if owned:
        return owned[0]
    # After KOM was uninstalled and installed again, Saleor shows no creator for the payments
    # the old installation made (the app row is gone) but still routes them to KOM by its
    # identifier. One such creator-less payment with a provider order id is taken as KOM's;
    # the provider then proves it (an unknown order id is a 404 that parks the order).
    orphans = [
        transaction
        for raw in order.get("transactions") or ()
        if (transaction := _dict(raw, where)).get("createdBy") is None and transaction.get("pspReference")
    ]
    return orphans[0] if len(orphans) == 1 else None


def _currency(order: dict[str, Any], where: str) -> str:
    total = _optional_dict(order.get("total"))
    channel = _optional_dict(order.get("channel"))
    currency = (
        _optional_dict(total.get("gross")).get("currency")
        or total.get("currency")
        or channel.get("currencyCode")
    )
    if not isinstance(currency, str) or not currency:
        raise SnapshotError(f"{where} has no currency (total.gross.currency)")
    return currency.upper()


def _gross(taxed: object, where: str) -> object:
    return _dict(taxed, where).get("gross")


def _amount(money: object, currency: str, what: str) -> int:
    if not isinstance(money, dict) or "amount" not in money:
        raise SnapshotError(f"{what}: missing amount")
    other = money.get("currency")
    if isinstance(other, str) and other.upper() != currency:
        raise SnapshotError(f"{what} is in {other}, the order in {currency}")
    try:
        minor = to_minor(money["amount"], currency)
    except MoneyError as exc:
        raise SnapshotError(f"{what}: {exc}") from exc
    if minor < 0:
        raise SnapshotError(f"{what} is negative")
    return minor


def _basis_points(rate: object, what: str) -> int:
    # Saleor's taxRate is a fraction (0.25); Klarna wants basis points (2500). Saleor keeps
    # four decimals, so this is exact; anything finer rounds to the nearest basis point.
    if isinstance(rate, bool) or not isinstance(rate, int | float | str | Decimal):
        raise SnapshotError(f"{what}: {rate!r} is not a tax rate")
    try:
        fraction = Decimal(repr(rate)) if isinstance(rate, float) else Decimal(rate)
        points = int((fraction * 10_000).to_integral_value(ROUND_HALF_UP))
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise SnapshotError(f"{what}: {rate!r} is not a tax rate") from exc
    if not 0 <= points <= 10_000:
        raise SnapshotError(f"{what}: {rate!r} is outside 0..1")
    return points


def _datetime(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise SnapshotError(f"{what}: {value!r} is not a date-time")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise SnapshotError(f"{what}: {value!r} is not ISO 8601") from exc


def _dict(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SnapshotError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _optional_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(order: dict[str, Any], key: str, where: str) -> list[Any]:
    value = order.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SnapshotError(f"{where}: {key} is not a list")
    return value


def _text(value: dict[str, Any], key: str, where: str) -> str:
    text = value.get(key)
    if not isinstance(text, str) or not text:
        raise SnapshotError(f"{where}: missing {key}")
    return text
