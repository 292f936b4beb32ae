"""Mapping rules of order_snapshot, on hand-made orders shaped like graphql/order.graphql."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from adapters.saleor.snapshot import SnapshotError, order_snapshot
from plugin.domain.snapshot import LineType, Tracking

APP = "QXBwOjc="


def money(amount: Any, currency: str = "EUR") -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def line(
    line_id: str = "L1",
    *,
    quantity: int = 1,
    unit: Any = 10.0,
    total: Any = None,
    tax: Any = 2.0,
    **extra: Any,
) -> dict[str, Any]:
    total = unit * quantity if total is None else total
    return {
        "id": line_id,
        "productName": "Shirt",
        "variantName": "M",
        "productSku": "SHIRT-M",
        "quantity": quantity,
        "taxRate": 0.25,
        "isShippingRequired": True,
        "isGift": False,
        "unitPrice": {"gross": money(unit)},
        "undiscountedUnitPrice": {"gross": money(unit)},
        "totalPrice": {"gross": money(total), "tax": money(tax)},
        **extra,
    }


def fulfillment(
    fid: str, status: str = "FULFILLED", lines: Any = (("L1", 1),), **extra: Any
) -> dict[str, Any]:
    return {
        "id": fid,
        "fulfillmentOrder": int(fid[1:]) if fid[1:].isdigit() else 1,
        "status": status,
        "created": "2026-01-02T03:04:05+00:00",
        "trackingNumber": "",
        "lines": [
            {"id": f"{fid}-{i}", "quantity": q, "orderLine": {"id": lid}} for i, (lid, q) in enumerate(lines)
        ],
        **extra,
    }


def transaction(
    tid: str = "T1", app: str | None = APP, psp: str = "klarna-1", charged: Any = 0.0
) -> dict[str, Any]:
    return {
        "id": tid,
        "pspReference": psp,
        "createdBy": {"__typename": "App", "id": app} if app else {"__typename": "User"},
        "authorizedAmount": money(10.0),
        "chargedAmount": money(charged),
        "refundedAmount": money(0.0),
        "events": [],
    }


def order(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "O1",
        "number": "1042",
        "created": "2026-01-01T00:00:00+00:00",
        "channel": {"slug": "se"},
        "total": {"currency": "EUR", "gross": money(10.0)},
        "lines": [line()],
        "shippingPrice": {"gross": money(0.0), "tax": money(0.0)},
        "shippingTaxRate": 0.0,
        "shippingMethodName": None,
        "fulfillments": [],
        "transactions": [transaction()],
    }
    return {**base, **extra}


def test_minimal_order() -> None:
    snap = order_snapshot(order(), app_id=APP)
    assert snap.order.id == "O1" and snap.order.number == "1042" and snap.channel == "se"
    assert snap.transaction_id == "T1" and snap.provider_order_id == "klarna-1" and snap.charged == 0
    assert snap.order.shipping is None  # free shipping is no line
    (mapped,) = snap.order.lines
    assert (mapped.unit_price, mapped.total_amount, mapped.total_tax_amount, mapped.tax_rate) == (
        1000,
        1000,
        200,
        2500,
    )
    assert (mapped.name, mapped.variant, mapped.sku, mapped.type) == (
        "Shirt",
        "M",
        "SHIRT-M",
        LineType.PHYSICAL,
    )


def test_decimal_input_from_the_client() -> None:
    # SaleorClient parses JSON numbers as Decimal; both shapes must map identically.
    as_decimals = json.loads(json.dumps(order()), parse_float=Decimal)
    assert order_snapshot(as_decimals, app_id=APP) == order_snapshot(order(), app_id=APP)


def test_discounted_line_keeps_the_undiscounted_unit_price() -> None:
    discounted = line(quantity=3, unit=10.0, total=25.5, tax=5.1)
    (mapped,) = order_snapshot(order(lines=[discounted]), app_id=APP).order.lines
    assert (mapped.unit_price, mapped.total_amount, mapped.total_discount_amount) == (1000, 2550, 450)


def test_rounded_unit_price_never_makes_a_negative_discount() -> None:
    # totalPrice 10.00 for 3 units: Saleor shows unitPrice 3.33, 3 x 3.33 = 9.99 < 10.00.
    rounded = line(quantity=3, unit=3.33, total=10.0, tax=2.0)
    (mapped,) = order_snapshot(order(lines=[rounded]), app_id=APP).order.lines
    assert (mapped.unit_price, mapped.total_amount, mapped.total_discount_amount) == (334, 1000, 2)


@pytest.mark.parametrize(
    ("rate", "points"), [(0.25, 2500), (0.0825, 825), (0.07, 700), (0, 0), ("0.19", 1900)]
)
def test_tax_rate_to_basis_points(rate: Any, points: int) -> None:
    (mapped,) = order_snapshot(order(lines=[line(taxRate=rate)]), app_id=APP).order.lines
    assert mapped.tax_rate == points


def test_digital_and_gift_lines() -> None:
    digital = line("L1", isShippingRequired=False, variantName="", productSku=None)
    gift = line("L2", unit=5.0, total=0.0, tax=0.0, isGift=True)
    first, second = order_snapshot(order(lines=[digital, gift]), app_id=APP).order.lines
    assert first.type is LineType.DIGITAL and first.variant is None and first.sku is None
    assert (second.unit_price, second.total_amount, second.total_discount_amount) == (500, 0, 500)


def test_shipping() -> None:
    raw = order(
        shippingPrice={"gross": money(4.9), "tax": money(0.98)},
        shippingTaxRate=0.25,
        shippingMethodName="DHL Home",
    )
    shipping = order_snapshot(raw, app_id=APP).order.shipping
    assert shipping is not None
    assert (shipping.name, shipping.amount, shipping.tax_amount, shipping.tax_rate, shipping.method) == (
        "DHL Home",
        490,
        98,
        2500,
        "DHL Home",
    )


@pytest.mark.parametrize(
    "status",
    ["RETURNED", "REFUNDED", "REPLACED", "CANCELED", "WAITING_FOR_APPROVAL", "REFUNDED_AND_RETURNED"],
)
def test_only_fulfilled_parcels_are_shipments(status: str) -> None:
    raw = order(
        lines=[line(quantity=2)],
        fulfillments=[fulfillment("F1", lines=[("L1", 1)]), fulfillment("F2", status, lines=[("L1", 1)])],
    )
    assert [s.id for s in order_snapshot(raw, app_id=APP).order.shipments] == ["F1"]


def test_shipment_fields() -> None:
    raw = order(
        lines=[line(quantity=2)], fulfillments=[fulfillment("F7", lines=[("L1", 2)], trackingNumber="JJD01")]
    )
    (shipment,) = order_snapshot(raw, app_id=APP).order.shipments
    assert shipment.number == "7" and shipment.tracking == Tracking(number="JJD01")
    assert shipment.created_at.isoformat() == "2026-01-02T03:04:05+00:00"
    assert [(sl.line_id, sl.quantity) for sl in shipment.lines] == [("L1", 2)]


def test_transactions() -> None:
    others = [transaction("T0", app="QXBwOjE="), transaction("TU", app=None)]
    snap = order_snapshot(order(transactions=[*others, transaction("T1", charged=7.5)]), app_id=APP)
    assert (snap.transaction_id, snap.provider_order_id, snap.charged) == ("T1", "klarna-1", 750)
    snap = order_snapshot(order(transactions=others), app_id=APP)
    assert (snap.transaction_id, snap.provider_order_id, snap.charged) == (None, None, 0)
    snap = order_snapshot(order(transactions=[transaction(psp="")]), app_id=APP)
    assert snap.transaction_id == "T1" and snap.provider_order_id is None
    with pytest.raises(SnapshotError, match="2 transactions"):
        order_snapshot(order(transactions=[transaction("T1"), transaction("T2")]), app_id=APP)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (order(lines=[line(unit=10.001)]), "decimal places"),
        (order(lines=[line(quantity=-1)]), "quantity"),
        (order(lines=[line(quantity=0, total=1.0)]), "zero units"),
        (order(lines=[line(taxRate=1.5)]), "outside"),
        (order(lines=[line(taxRate=None)]), "tax rate"),
        (order(lines=[line(totalPrice={"gross": money(10.0, "SEK"), "tax": money(2.0)})]), "SEK"),
        (order(lines=[{"id": "L1"}]), "quantity"),
        (order(fulfillments=[fulfillment("F1", lines=[("L9", 1)])]), "unknown order line"),
        (order(fulfillments=[fulfillment("F1", created="yesterday")]), "ISO 8601"),
        (order(total=None, channel=None), "currency"),
        (order(transactions=[transaction(charged=-1.0)]), "negative"),
        ({"number": "1"}, "missing id"),
    ],
)
def test_errors_are_clear(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        order_snapshot(raw, app_id=APP)


def test_zero_decimal_currency() -> None:
    yen = line(unit=1500, tax=136)
    for key in ("unitPrice", "undiscountedUnitPrice"):
        yen[key] = {"gross": money(1500, "JPY")}
    yen["totalPrice"] = {"gross": money(1500, "JPY"), "tax": money(136, "JPY")}
    raw = order(
        total={"currency": "JPY", "gross": money(1500, "JPY")},
        lines=[yen],
        shippingPrice={"gross": money(0, "JPY"), "tax": money(0, "JPY")},
        transactions=[],
    )
    (mapped,) = order_snapshot(raw, app_id=APP).order.lines
    assert (mapped.unit_price, mapped.total_amount, mapped.total_tax_amount) == (1500, 1500, 136)
    yen["totalPrice"]["gross"] = money(1500.5, "JPY")
    with pytest.raises(SnapshotError, match="decimal places"):
        order_snapshot(raw, app_id=APP)


def test_the_lifecycle_of_fulfillments_is_kept() -> None:
    """FULFILLED parcels are out, CANCELED never left, returned ones hold what came back."""
    snap = order_snapshot(
        order(
            status="CANCELED",
            lines=[line(quantity=4, tax=8.0)],
            fulfillments=[
                fulfillment("F1", lines=(("L1", 1),)),
                fulfillment("F2", "CANCELED", lines=(("L1", 1),)),
                fulfillment("F3", "RETURNED", lines=(("L1", 1),)),
                fulfillment("F4", "REPLACED", lines=(("L1", 1),)),
                fulfillment("F5", "REFUNDED", lines=(("L1", 1),)),
                fulfillment("F6", "WAITING_FOR_APPROVAL", lines=(("L1", 1),)),
            ],
        ),
        app_id=APP,
    )
    assert [s.id for s in snap.order.shipments] == ["F1"]
    assert [(s.id, s.lines[0].quantity) for s in snap.order.cancelled_shipments] == [("F2", 1)]
    assert [(r.line_id, r.quantity) for r in snap.order.returned] == [("L1", 1), ("L1", 1)]
    assert snap.order.cancelled is True
    assert order_snapshot(order(status="UNFULFILLED"), app_id=APP).order.cancelled is False


def test_gift_cards_and_other_payments_paid_part_of_the_order() -> None:
    used = {
        "type": "USED_IN_ORDER",
        "orderId": "O1",
        "balance": {"currentBalance": money("15.00"), "oldCurrentBalance": money("40.00")},
    }
    elsewhere = {**used, "orderId": "O2"}
    other = {**transaction("T2", app="QXBwOjk=", psp="manual"), "authorizedAmount": money("0.00")}
    other["chargedAmount"] = money("5.50")
    snap = order_snapshot(
        order(
            giftCards=[{"id": "G1", "last4CodeChars": "AB12", "events": [used, elsewhere]}],
            transactions=[transaction(), other],
        ),
        app_id=APP,
    )
    assert [(g.id, g.amount, g.code) for g in snap.order.gift_cards] == [
        ("G1", 2500, "AB12"),
        ("T2", 550, None),
    ]
