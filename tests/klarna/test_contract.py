"""Bodies built by models + mapping match the Order Management OpenAPI spec; responses parse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from adapters.klarna.mapping import GOODWILL_MARK, capture_request, provider_order, refund_request
from adapters.klarna.models import (
    RESPONSE,
    CaptureRequest,
    Order,
    OrderLine,
    RefundRequest,
    ShippingInfo,
    ShippingInfoUpdate,
)
from plugin.domain.actions import CaptureAction, PlannedLine, RefundAction
from plugin.domain.snapshot import Tracking
from tests.klarna.contract import order_example, schema, validate_request

pytestmark = pytest.mark.contract


def wire(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def line(reference: str, **overrides: Any) -> PlannedLine:
    fields: dict[str, Any] = dict(
        reference=reference,
        name="Walnut desk lamp",
        type="physical",
        quantity=2,
        unit_price=5000,
        total_discount_amount=1000,
        total_amount=9000,
        tax_rate=2500,
        total_tax_amount=1800,
    )
    return PlannedLine(**(fields | overrides))


DISCOUNT = line(
    "DISCOUNT-10",
    name="Spring sale",
    type="discount",
    quantity=1,
    unit_price=-1000,
    total_discount_amount=0,
    total_amount=-1000,
    total_tax_amount=-200,
)
SHIPPING = line(
    "SHIPPING",
    name="DHL Home",
    type="shipping_fee",
    quantity=1,
    unit_price=495,
    total_discount_amount=0,
    total_amount=495,
    total_tax_amount=99,
)


def capture_action(*lines: PlannedLine, tracking: Tracking | None = None, **overrides: Any) -> CaptureAction:
    fields: dict[str, Any] = dict(
        key="capture:s1",
        reference="10001-P1",
        idempotency_key=uuid.uuid4(),
        shipment_id="s1",
        parcel=1,
        captured_amount=sum(item.total_amount for item in lines),
        lines=lines,
        description="Parcel 1 of order 10001",
        tracking=tracking,
    )
    return CaptureAction(**(fields | overrides))


def refund_action(*lines: PlannedLine, **overrides: Any) -> RefundAction:
    fields: dict[str, Any] = dict(
        key="refund:r1",
        reference="10001-R1",
        idempotency_key=uuid.uuid4(),
        request_id="r1",
        capture="cap-1",
        parcel=1,
        refunded_amount=sum(item.total_amount for item in lines),
        lines=lines,
        description="Returned items",
    )
    return RefundAction(**(fields | overrides))


# --- requests against the spec -------------------------------------------------------------


def test_capture_with_product_discount_and_shipping_lines_and_tracking_matches_spec() -> None:
    tracking = Tracking(
        company="DHL DE", number="00340434", uri="https://track.example/00340434", method="home"
    )
    body = wire(capture_request(capture_action(line("SKU-1"), DISCOUNT, SHIPPING, tracking=tracking)))

    validate_request("CaptureObject", body)
    assert body["captured_amount"] == 9000 - 1000 + 495
    assert [item["type"] for item in body["order_lines"]] == ["physical", "discount", "shipping_fee"]
    assert body["shipping_info"] == [
        {
            "shipping_company": "DHL DE",
            "shipping_method": "Home",
            "tracking_number": "00340434",
            "tracking_uri": "https://track.example/00340434",
        }
    ]
    validate_request("UpdateShippingInfo", {"shipping_info": body["shipping_info"]})


def test_capture_at_every_limit_matches_spec_and_long_text_is_cut() -> None:
    reference = "R" * 255
    long_line = line("S" * 255, name="N" * 300)
    tracking = Tracking(
        company="C" * 150, number="9" * 120, uri="https://t.example/" + "u" * 1006, method="PickUpPoint"
    )
    action = capture_action(long_line, tracking=tracking, reference=reference, description="D" * 300)
    body = wire(capture_request(action))

    validate_request("CaptureObject", body)
    assert body["reference"] == reference  # references are never cut: refunds must match them exactly
    assert body["order_lines"][0]["reference"] == "S" * 255
    assert len(body["description"]) == 255
    assert len(body["order_lines"][0]["name"]) == 255
    info = body["shipping_info"][0]
    assert (len(info["shipping_company"]), len(info["tracking_number"]), len(info["tracking_uri"])) == (
        100,
        100,
        1024,
    )


def test_text_is_cut_by_utf16_units_without_splitting_characters() -> None:
    body = wire(capture_request(capture_action(line("SKU-1", name="📦" * 200))))
    name = body["order_lines"][0]["name"]
    assert name == "📦" * 127  # 254 UTF-16 units; one more emoji would need 256
    validate_request("CaptureObject", body)


def test_a_capture_of_1000_lines_and_500_shipping_infos_matches_spec() -> None:
    request = CaptureRequest(
        captured_amount=0,
        order_lines=[
            OrderLine(name=f"Line {i}", quantity=0, unit_price=0, total_amount=0) for i in range(1000)
        ],
        shipping_info=[ShippingInfo(tracking_number=str(i)) for i in range(500)],
    )
    validate_request("CaptureObject", wire(request))
    with pytest.raises(ValidationError):
        CaptureRequest(captured_amount=0, shipping_info=[ShippingInfo()] * 501)


def test_overlong_reference_is_refused_not_cut() -> None:
    with pytest.raises(ValidationError):
        capture_request(capture_action(line("SKU-1"), reference="R" * 256))
    with pytest.raises(ValidationError):
        capture_request(capture_action(line("S" * 256)))


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("home", "Home"),
        (" PICKUPPOINT ", "PickUpPoint"),
        ("dhlpackstation", "DHLPackstation"),
        ("Express", None),
        (None, None),
    ],
)
def test_tracking_method_maps_case_insensitively_or_is_omitted(
    method: str | None, expected: str | None
) -> None:
    body = wire(capture_request(capture_action(line("SKU-1"), tracking=Tracking(number="1", method=method))))
    assert body["shipping_info"][0].get("shipping_method") == expected
    validate_request("CaptureObject", body)


def test_tracking_without_company_or_number_sends_no_shipping_info() -> None:
    tracking = Tracking(company="", number=None, uri="https://t.example/1", method="Home")
    assert "shipping_info" not in wire(capture_request(capture_action(line("SKU-1"), tracking=tracking)))


def test_refund_with_returned_and_goodwill_lines_matches_spec() -> None:
    goodwill = line(
        "kom-goodwill",
        name="Goodwill: late delivery",
        quantity=1,
        unit_price=500,
        total_discount_amount=0,
        total_amount=500,
        tax_rate=0,
        total_tax_amount=0,
        goodwill=True,
    )
    returned = line(
        "SKU-1",
        quantity=1,
        unit_price=5000,
        total_discount_amount=500,
        total_amount=4500,
        total_tax_amount=900,
    )
    body = wire(refund_request(refund_action(returned, DISCOUNT, goodwill, reference="Z" * 255)))

    validate_request("RefundObject", body)
    assert body["refunded_amount"] == 4500 - 1000 + 500
    assert [item.get("merchant_data") for item in body["order_lines"]] == [None, None, GOODWILL_MARK]


def test_amount_only_refund_without_lines_matches_spec() -> None:
    body = wire(refund_request(refund_action(refunded_amount=700)))
    assert "order_lines" not in body
    validate_request("RefundObject", body)


def test_the_spec_validator_catches_what_the_api_would_reject() -> None:
    # Guards the contract helper itself: a stripped-down spec would let everything through.
    with pytest.raises(AssertionError):
        validate_request("CaptureObject", {"captured_amount": 200_000_001})
    with pytest.raises(AssertionError):
        validate_request("shipping_info", {"shipping_method": "Drone"})
    with pytest.raises(AssertionError):
        validate_request(
            "order_line", {"name": "x", "quantity": 1, "unit_price": 1, "total_amount": 1, "type": "voucher"}
        )


# --- our models carry the spec's limits ----------------------------------------------------

LIMIT_KEYS = ("maxLength", "minLength", "maximum", "minimum", "maxItems", "minItems")


def limits(prop: dict[str, Any]) -> dict[str, Any]:
    """The numeric limits of one JSON-schema property, looking through ``anyOf: [X, null]``."""
    found = {key: prop[key] for key in LIMIT_KEYS if key in prop}
    for option in prop.get("anyOf", []):
        found |= {key: option[key] for key in LIMIT_KEYS if key in option}
    # minLength/minItems 0 constrain nothing; the spec spells them out, pydantic does not.
    return {
        key: value
        for key, value in found.items()
        if not (key.startswith("min") and key != "minimum" and value == 0)
    }


@pytest.mark.parametrize(
    ("model", "spec_name"),
    [
        (OrderLine, "order_line"),
        (ShippingInfo, "shipping_info"),
        (CaptureRequest, "CaptureObject"),
        (RefundRequest, "RefundObject"),
        (ShippingInfoUpdate, "UpdateShippingInfo"),
    ],
)
def test_model_limits_equal_the_spec(model: type[BaseModel], spec_name: str) -> None:
    ours = model.model_json_schema()["properties"]
    theirs = schema(spec_name)["properties"]
    assert set(ours) <= set(theirs), "fields the spec does not know"
    for name, prop in ours.items():
        assert limits(prop) == limits(theirs[name]), name


# --- request model validation --------------------------------------------------------------


def test_request_models_refuse_values_outside_the_spec() -> None:
    with pytest.raises(ValidationError, match="order line type"):
        OrderLine(name="x", type="voucher", quantity=1, unit_price=1, total_amount=1)
    with pytest.raises(ValidationError, match="shipping_method"):
        ShippingInfo(shipping_method="Drone")
    with pytest.raises(ValidationError):
        RefundRequest(refunded_amount=-1)
    with pytest.raises(ValidationError):
        CaptureRequest(captured_amount=1, unknown_field=True)  # type: ignore[call-arg]


# --- responses ------------------------------------------------------------------------------


def test_order_example_is_a_valid_merchant_order_and_survives_a_round_trip() -> None:
    example = order_example()
    validate_request("MerchantOrderDto", example)
    order = Order.model_validate(example, context=RESPONSE)
    validate_request("MerchantOrderDto", wire(order))


def test_order_parsing_ignores_unknown_fields_and_new_enum_values() -> None:
    example = order_example()
    example["brand_new_field"] = {"nested": [1, 2]}
    example["captures"][0]["shipping_info"][0]["shipping_method"] = "DroneDrop"
    example["captures"][0]["order_lines"][0]["type"] = "voucher_fee"
    example["captures"][0]["order_lines"][0]["subscription"] = {
        "name": "x",
        "interval": "MONTH",
        "interval_count": 1,
    }
    order = Order.model_validate(example, context=RESPONSE)
    assert order.captures[0].shipping_info[0].shipping_method == "DroneDrop"
    assert provider_order(order).captures[0].lines[0].type == "voucher_fee"


def test_provider_order_from_example() -> None:
    result = provider_order(Order.model_validate(order_example(), context=RESPONSE))

    assert (result.order_id, result.status, result.currency) == (
        "f3392f8b-6116-4073-ab96-e330819e2c07",
        "PART_CAPTURED",
        "EUR",
    )
    assert (
        result.order_amount,
        result.captured_amount,
        result.refunded_amount,
        result.remaining_authorized_amount,
    ) == (20990, 10995, 3300, 9995)
    (capture,) = result.captures
    assert capture.capture_id == "4ba29b50-be7b-44f5-a492-113e6a865e22"
    assert (capture.reference, capture.klarna_reference, capture.refunded_amount) == (
        "10001-P1",
        "K4MADNY-1",
        2500,
    )
    assert capture.captured_at == datetime(2025, 1, 11, 8, 0, tzinfo=UTC)
    assert [item.reference for item in capture.lines] == ["SKU-1", "SKU-2", "DISCOUNT-10", "SHIPPING"]
    assert capture.lines[0].total_discount_amount == 1000
    assert capture.lines[2].total_discount_amount == 0  # absent on the discount line
    assert [refund.refund_id[:8] for refund in result.refunds] == ["b2cb4f2e", "8c3e3b7c", "0d4f2a9e"]
    assert [[item.goodwill for item in refund.lines] for refund in result.refunds] == [
        [False],
        [True],
        [True],
    ]
    assert result.refunds[2].refunded_at is None


def test_provider_order_fills_missing_amounts_with_zero() -> None:
    order = Order.model_validate(
        {
            "order_id": "o1",
            "status": "AUTHORIZED",
            "purchase_currency": "SEK",
            "captures": [
                {
                    "capture_id": "c1",
                    "captured_amount": 100,
                    "captured_at": "not a date",
                    "order_lines": [{"name": "x", "quantity": 1, "unit_price": 100, "total_amount": 100}],
                }
            ],
        },
        context=RESPONSE,
    )
    result = provider_order(order)
    assert (
        result.order_amount,
        result.captured_amount,
        result.refunded_amount,
        result.remaining_authorized_amount,
    ) == (0, 0, 0, 0)
    capture = result.captures[0]
    assert capture.captured_at is None and capture.refunded_amount is None
    assert capture.lines[0].type == "physical"
    assert (capture.lines[0].tax_rate, capture.lines[0].total_tax_amount) == (0, 0)


def test_naive_timestamps_are_read_as_utc() -> None:
    order = Order.model_validate(
        {
            "order_id": "o1",
            "status": "CLOSED",
            "purchase_currency": "EUR",
            "refunds": [{"refund_id": "r1", "refunded_amount": 1, "refunded_at": "2025-03-01T12:30:00"}],
        },
        context=RESPONSE,
    )
    assert provider_order(order).refunds[0].refunded_at == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
