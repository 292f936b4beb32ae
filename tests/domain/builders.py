"""Small builders for readable domain tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plugin.domain.rounding import tax_of_gross
from plugin.domain.snapshot import OrderLine, RefundLine, RefundRequest, Shipment, ShipmentLine

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def line(
    line_id: str,
    sku: str | None,
    name: str,
    quantity: int,
    unit_price: int,
    *,
    total: int | None = None,
    tax_rate: int = 2500,
) -> OrderLine:
    total = quantity * unit_price if total is None else total
    return OrderLine(
        id=line_id,
        sku=sku,
        name=name,
        quantity=quantity,
        unit_price=unit_price,
        total_amount=total,
        tax_rate=tax_rate,
        total_tax_amount=tax_of_gross(total, tax_rate),
    )


def shipment(shipment_id: str, minute: int, **quantities: int) -> Shipment:
    return Shipment(
        id=shipment_id,
        created_at=at(minute),
        lines=tuple(ShipmentLine(line_id, q) for line_id, q in quantities.items()),
    )


def refund(
    refund_id: str,
    minute: int,
    *items: tuple[str, int] | tuple[str, int, str],
    amount: int | None = None,
    shipping: bool = False,
) -> RefundRequest:
    lines = tuple(RefundLine(i[0], i[1], i[2] if len(i) == 3 else None) for i in items)  # type: ignore[misc]
    return RefundRequest(
        id=refund_id,
        created_at=at(minute),
        lines=lines,
        amount=amount,
        include_shipping=shipping,
    )
