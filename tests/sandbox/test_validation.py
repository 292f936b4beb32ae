"""Request validation: Klarna's limits, exact line arithmetic, exact error bodies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.klarna.sandbox import ApiError
from adapters.klarna.sandbox.validation import (
    capture_request,
    new_order,
    parse_json,
    refund_request,
    shipping_info_update,
)

from .conftest import OM, assert_error, create_order, line


def capture(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "captured_amount": 10000,
        "order_lines": [line("A12345", 3000), line("A98765", 7000)],
    }
    body.update(overrides)
    return body


def with_line(**fields: Any) -> dict[str, Any]:
    """A capture whose only line is `line("X", 1000)` changed by `fields` (None deletes)."""
    item = line("X", 1000)
    for key, value in fields.items():
        if value is None:
            item.pop(key)
        else:
            item[key] = value
    total = item.get("total_amount")
    amount = total if isinstance(total, int) and 0 <= total <= 200_000_000 else 1000
    return {"captured_amount": amount, "order_lines": [item]}


def messages(body: dict[str, Any], parse: Any = capture_request) -> tuple[int, str, list[str]]:
    with pytest.raises(ApiError) as caught:
        parse(body)
    return caught.value.status, caught.value.error_code, list(caught.value.messages)


def test_valid_capture_is_parsed() -> None:
    request = capture_request(capture(description="Parcel 1", reference="shipment-1"))

    assert request.captured_amount == 10000
    assert [(x.reference, x.total_amount) for x in request.order_lines] == [
        ("A12345", 3000),
        ("A98765", 7000),
    ]
    assert request.order_lines[0].raw == line("A12345", 3000)
    assert (request.description, request.reference) == ("Parcel 1", "shipment-1")


def test_capture_without_lines_is_valid() -> None:
    assert capture_request({"captured_amount": 5}).order_lines == ()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "captured_amount"),
        ({"captured_amount": None}, "captured_amount"),
        ({"captured_amount": -1}, "captured_amount"),
        ({"captured_amount": 200_000_001}, "captured_amount"),
        ({"captured_amount": 100.0}, "captured_amount"),
        ({"captured_amount": "100"}, "captured_amount"),
        ({"captured_amount": True}, "captured_amount"),
        ({"captured_amount": 1, "description": "x" * 256}, "description"),
        ({"captured_amount": 1, "reference": "x" * 256}, "reference"),
        ({"captured_amount": 1, "reference": 7}, "reference"),
        ({"captured_amount": 1, "order_lines": {}}, "order_lines"),
        ({"captured_amount": 1001, "order_lines": [line("X", 1)] * 1001}, "order_lines"),
        ({"captured_amount": 1, "order_lines": ["x"]}, "order_lines[0]"),
        ({"captured_amount": 1, "shipping_info": [{}] * 501}, "shipping_info"),
        ({"captured_amount": 1, "shipping_delay": -1}, "shipping_delay"),
        ({"captured_amount": 1, "capture_id": "mine"}, "capture_id"),
    ],
)
def test_capture_field_limits(body: dict[str, Any], field: str) -> None:
    assert messages(body) == (400, "BAD_VALUE", [f"Bad value: {field}"])


def test_capture_limits_at_the_edge_are_accepted() -> None:
    lines = [line("X", 1)] * 1000
    request = capture_request(
        {"captured_amount": 1000, "description": "d" * 255, "reference": "r" * 255, "order_lines": lines}
    )
    assert len(request.order_lines) == 1000
    assert capture_request({"captured_amount": 200_000_000}).captured_amount == 200_000_000
    assert capture_request({"captured_amount": 0}).captured_amount == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "n" * 256}, "name"),
        ({"reference": "r" * 256}, "reference"),
        ({"quantity": None}, "quantity"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"unit_price": None}, "unit_price"),
        ({"unit_price": 200_000_001, "total_amount": 1000}, "unit_price"),
        ({"total_amount": None}, "total_amount"),
        ({"total_amount": -200_000_001}, "total_amount"),
        ({"total_discount_amount": -1}, "total_discount_amount"),
        ({"total_discount_amount": 200_000_001}, "total_discount_amount"),
        ({"tax_rate": -1}, "tax_rate"),
        ({"tax_rate": 10_001}, "tax_rate"),
        ({"type": "PHYSICAL"}, "type"),
        ({"type": "coupon"}, "type"),
        ({"quantity_unit": "u" * 11}, "quantity_unit"),
        ({"image_url": "u" * 1025}, "image_url"),
        ({"colour": "red"}, "colour"),
        ({"product_identifiers": {"brand": "b" * 71}}, "product_identifiers.brand"),
        ({"product_identifiers": {"ean": "1"}}, "product_identifiers.ean"),
        ({"subscription": {"name": "s", "interval": "DECADE", "interval_count": 1}}, "subscription.interval"),
        (
            {"subscription": {"name": "s", "interval": "DAY", "interval_count": 0}},
            "subscription.interval_count",
        ),
        ({"subscription": {"interval": "DAY", "interval_count": 1}}, "subscription.name"),
    ],
)
def test_order_line_field_limits(fields: dict[str, Any], field: str) -> None:
    assert messages(with_line(**fields)) == (400, "BAD_VALUE", [f"Bad value: order_lines[0].{field}"])


def test_every_line_type_of_the_spec_is_accepted() -> None:
    for kind in ("physical", "discount", "shipping_fee", "sales_tax", "store_credit", "gift_card", "digital",
                 "surcharge", "return_fee"):  # fmt: skip
        assert capture_request(with_line(type=kind)).order_lines[0].raw["type"] == kind


def test_total_amount_must_be_exactly_quantity_times_unit_price_minus_discount() -> None:
    ok = with_line(
        quantity=3, unit_price=1000, total_discount_amount=500, total_amount=2500, total_tax_amount=500
    )
    assert capture_request(ok).captured_amount == 2500

    off_by_one = with_line(
        quantity=3, unit_price=1000, total_discount_amount=500, total_amount=2501, total_tax_amount=500
    )
    assert messages(off_by_one) == (400, "BAD_VALUE", ["Bad value: order_lines[0].total_amount"])


@pytest.mark.parametrize(
    ("tax", "ok"), [(2000, True), (1999, True), (2001, True), (1998, False), (2002, False)]
)
def test_total_tax_amount_within_one_of_the_rate(tax: int, ok: bool) -> None:
    # 10000 at 25 %: tax = 10000 * 2500 / 12500 = 2000
    body = with_line(unit_price=10000, total_amount=10000, tax_rate=2500, total_tax_amount=tax)
    if ok:
        assert capture_request(body).captured_amount == 10000
    else:
        assert messages(body) == (400, "BAD_VALUE", ["Bad value: order_lines[0].total_tax_amount"])


def test_tax_rounding_of_a_fractional_amount_and_negative_discount_lines() -> None:
    # 999 at 25 % = 199.8: both 199 and 200 are within ±1; a discount line has negative tax.
    for tax in (199, 200):
        assert capture_request(with_line(unit_price=999, total_amount=999, total_tax_amount=tax)).order_lines
    discount = line("D", -1000, type="discount", total_tax_amount=-200)
    body = {"captured_amount": 2000, "order_lines": [line("A", 3000), discount]}
    assert capture_request(body).order_lines[1].total_amount == -1000
    body["order_lines"] = [line("A", 3000), {**discount, "total_tax_amount": 200}]
    assert messages(body) == (400, "BAD_VALUE", ["Bad value: order_lines[1].total_tax_amount"])


def test_tax_amount_without_rate_means_zero_rate() -> None:
    assert messages(with_line(tax_rate=None, total_tax_amount=200))[2] == [
        "Bad value: order_lines[0].total_tax_amount"
    ]
    assert capture_request(with_line(tax_rate=None, total_tax_amount=1)).order_lines


def test_capture_lines_must_sum_to_captured_amount() -> None:
    assert messages(capture(captured_amount=9999)) == (400, "BAD_VALUE", ["Bad value: captured_amount"])


def test_all_offending_fields_are_named_in_order() -> None:
    body = {
        "captured_amount": -5,
        "order_lines": [line("A", 10, quantity=-1), line("B", 10, tax_rate=20_000)],
    }
    assert messages(body)[2] == [
        "Bad value: captured_amount",
        "Bad value: order_lines[0].quantity",
        "Bad value: order_lines[1].tax_rate",
    ]


def test_null_on_an_optional_field_counts_as_absent() -> None:
    request = capture_request({"captured_amount": 1, "description": None, "order_lines": None})
    assert request.description is None and request.order_lines == ()


def test_shipping_info_limits_answer_422() -> None:
    ok = {"shipping_company": "c" * 100, "tracking_number": "n" * 100, "tracking_uri": "u" * 1024,
          "shipping_method": "PickUpPoint", "return_shipping_company": "DHL US"}  # fmt: skip
    assert capture_request({"captured_amount": 1, "shipping_info": [ok]}).shipping_info == (ok,)
    for field, value in [("shipping_company", "c" * 101), ("tracking_number", "n" * 101),
                         ("tracking_uri", "u" * 1025), ("shipping_method", "Drone")]:  # fmt: skip
        body = {"captured_amount": 1, "shipping_info": [{field: value}]}
        assert messages(body) == (422, "UNPROCESSABLE_ENTITY", [f"Bad value: shipping_info[0].{field}"])


def test_shipping_info_wrong_type_or_unknown_field_is_bad_value() -> None:
    body = {"captured_amount": 1, "shipping_info": [{"shipping_company": 5, "carrier": "x"}]}
    assert messages(body) == (
        400,
        "BAD_VALUE",
        ["Bad value: shipping_info[0].carrier", "Bad value: shipping_info[0].shipping_company"],
    )


def test_shipping_info_update_needs_one_to_500_items() -> None:
    assert shipping_info_update({"shipping_info": [{"tracking_number": "1"}]}) == ({"tracking_number": "1"},)
    bodies: list[dict[str, Any]] = [{}, {"shipping_info": []}, {"shipping_info": [{}] * 501}]
    for body in bodies:
        assert messages(body, shipping_info_update) == (400, "BAD_VALUE", ["Bad value: shipping_info"])


def test_refund_lines_need_not_sum_but_each_line_is_checked() -> None:
    request = refund_request({"refunded_amount": 9000, "order_lines": [line("B24680", 10000)]})
    assert request.refunded_amount == 9000  # accepted; the ledger will misallocate it
    assert messages(
        {"refunded_amount": 1, "order_lines": [line("X", 5, total_amount=6)]}, refund_request
    ) == (
        400,
        "BAD_VALUE",
        ["Bad value: order_lines[0].total_amount"],
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "refunded_amount"),
        ({"refunded_amount": 200_000_001}, "refunded_amount"),
        ({"refunded_amount": 1, "description": "d" * 256}, "description"),
        ({"refunded_amount": 1, "credit_invoice": "yes"}, "credit_invoice"),
        ({"refunded_amount": 1, "capture_id": "c"}, "capture_id"),
    ],
)
def test_refund_field_limits(body: dict[str, Any], field: str) -> None:
    assert messages(body, refund_request) == (400, "BAD_VALUE", [f"Bad value: {field}"])


def test_parse_json_rejects_non_json_and_wrong_content_type() -> None:
    for raw, content_type, field in [
        (b"{}", "text/plain", "Content-Type"),
        (b"{}", None, "Content-Type"),
        (b"", "application/json", "body"),
        (b"{nope", "application/json", "body"),
        (b"[1]", "application/json", "body"),
        (b'{"captured_amount": NaN}', "application/json", "body"),
        (b"\xff", "application/json", "body"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_json(raw, content_type)
        assert caught.value.messages == (f"Bad value: {field}",)
    assert parse_json(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}


def test_sandbox_order_lines_must_sum_to_order_amount() -> None:
    assert new_order({"purchase_currency": "eur", "order_amount": 3000, "order_lines": [line("A", 3000)]})
    assert messages(
        {"purchase_currency": "EUR", "order_amount": 1, "order_lines": [line("A", 3000)]}, new_order
    )[2] == ["Bad value: order_amount"]
    assert messages({"purchase_currency": "EURO", "order_amount": 1}, new_order)[2] == [
        "Bad value: purchase_currency"
    ]


async def test_bad_value_body_over_http(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    body = with_line(total_tax_amount=1)

    response = await client.post(f"{OM}/{order_id}/captures", json=body)

    assert_error(response, 400, "BAD_VALUE", "Bad value: order_lines[0].total_tax_amount")


async def test_non_json_body_over_http(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    url = f"{OM}/{order_id}/refunds"

    not_json = await client.post(url, content=b"refund please", headers={"Content-Type": "application/json"})
    form = await client.post(url, data={"refunded_amount": "1"})

    assert_error(not_json, 400, "BAD_VALUE", "Bad value: body")
    assert_error(form, 400, "BAD_VALUE", "Bad value: Content-Type")
