"""What a real Saleor 3.23.28 sent, through KOM's payload models and order mapping.

The captures were made with fuller subscriptions (captures-3.23.28/subscriptions.graphql)
than KOM registers; the lenient models must still parse them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.saleor.manifest import BY_SALEOR_EVENT
from adapters.saleor.payloads import (
    EmptyPayload,
    FulfillmentApproved,
    FulfillmentCreated,
    TransactionCancelationRequested,
    TransactionChargeRequested,
    TransactionRefundRequested,
    parse_payload,
    refund_request_from,
)
from adapters.saleor.snapshot import order_snapshot
from plugin.domain.snapshot import LineType, RefundLine, Shipment, ShipmentLine
from tests.saleor import shared

pytestmark = pytest.mark.contract

APP = "QXBwOjE="  # the stub app that created the transaction in the captures
TSHIRT = "T3JkZXJMaW5lOmI0NjMyZWY2LTI2MzgtNDExZC1iZGVhLWIwMDI1NTJkZWJkZg=="
JEANS = "T3JkZXJMaW5lOjNkNzc0YmM5LTY5NzYtNDRhOC1iM2ZhLTk5OGFhMmI5Y2UyYQ=="
SNEAKERS = "T3JkZXJMaW5lOjIwOGQ2YzBjLTdmOGItNGEyMC1hMGMzLTFmNDc2Yjc1MjAyZQ=="
TRANSACTION = "VHJhbnNhY3Rpb25JdGVtOjZiZTQzOWNlLWIwZmQtNDFlYS1hYWFlLWJlMTYxMzRiN2YxZQ=="
MODELS = {
    "fulfillment_created": FulfillmentCreated,
    "fulfillment_approved": FulfillmentApproved,
    "transaction_charge_requested": TransactionChargeRequested,
    "transaction_refund_requested": TransactionRefundRequested,
    "transaction_cancelation_requested": TransactionCancelationRequested,
}
RELEVANT = [name for event in MODELS for name in shared.capture_names(event)]


@pytest.mark.parametrize("name", RELEVANT)
def test_every_relevant_capture_parses(name: str) -> None:
    capture = shared.capture(name)
    event = capture.meta["headers"]["Saleor-Event"]
    assert event in BY_SALEOR_EVENT
    if not capture.body:
        with pytest.raises(EmptyPayload):
            parse_payload(event, capture.body)
        return
    payload = parse_payload(event, capture.body)
    assert type(payload) is MODELS[capture.event]
    assert payload.typename == capture.meta["typename"] == BY_SALEOR_EVENT[event].typename
    assert payload.issued_at is not None and payload.issued_at.tzinfo is not None


def test_captures_cover_every_relevant_event() -> None:
    assert {shared.capture(name).event for name in RELEVANT} == set(MODELS)


def test_fulfillment_created_payload() -> None:
    payload = parse_payload("fulfillment_created", shared.capture("0003_fulfillment_created").body)
    assert isinstance(payload, FulfillmentCreated)
    assert payload.recipient is not None and payload.recipient.id == APP
    assert payload.version == "3.23.28"
    assert payload.fulfillment is not None and payload.fulfillment.status == "FULFILLED"
    assert payload.order is not None and payload.order.number == "1"
    assert payload.order.channel is not None and payload.order.channel.slug == "default-channel"


def test_fulfillment_approved_capture_lacks_recipient() -> None:
    # Made with the observer subscription: no recipient, no version. Parsing must not
    # fail; rejecting a payload without recipient is the web layer's call.
    payload = parse_payload("FULFILLMENT_APPROVED", shared.capture("0008_fulfillment_approved").body)
    assert payload.recipient is None and payload.version is None


def test_charge_and_cancel_requests() -> None:
    charge = parse_payload(
        "transaction_charge_requested", shared.capture("0011_transaction_charge_requested").body
    )
    assert isinstance(charge, TransactionChargeRequested)
    assert (charge.action.action_type, charge.action.amount, charge.action.currency) == (
        "CHARGE",
        Decimal(100),
        "EUR",
    )
    assert charge.transaction is not None and charge.transaction.psp_reference == "klarna-order-123"
    assert charge.transaction.created_by is not None and charge.transaction.created_by.id == APP
    cancel = parse_payload(
        "transaction_cancelation_requested", shared.capture("0018_transaction_cancelation_requested").body
    )
    assert isinstance(cancel, TransactionCancelationRequested)
    assert cancel.action.action_type == "CANCEL" and cancel.action.amount == Decimal(
        "10.00"
    )  # remaining authorization


def test_captured_refund_request_maps_to_a_refund_request() -> None:
    capture = shared.capture("0015_transaction_refund_requested")
    payload = parse_payload("transaction_refund_requested", capture.body)
    assert isinstance(payload, TransactionRefundRequested)
    request = refund_request_from(payload)
    assert request.id == "T3JkZXJHcmFudGVkUmVmdW5kOjE="
    assert request.lines == (RefundLine(SNEAKERS, 1),)
    assert request.amount == 10000
    assert request.include_shipping is False
    assert request.reason == "returned sneakers"
    assert request.created_at == datetime(2026, 11, 21, 21, 7, 55, 86021, tzinfo=UTC)


def test_empty_retry_body_is_recognised() -> None:
    capture = shared.capture("0051_transaction_refund_requested")
    assert capture.body == b"" and capture.meta["typename"] == ""
    with pytest.raises(EmptyPayload):
        parse_payload(capture.meta["headers"]["Saleor-Event"], capture.body)


def test_fulfillment_created_order_snapshot() -> None:
    raw = shared.capture("0003_fulfillment_created").json()["order"]
    snap = order_snapshot(raw, app_id=APP)
    order = snap.order
    assert (order.id, order.number, order.currency) == (raw["id"], "1", "EUR")
    assert (snap.channel, snap.currency, snap.charged) == ("default-channel", "EUR", 0)
    assert snap.transaction_id == TRANSACTION
    assert snap.provider_order_id == "klarna-order-123"
    assert snap.created_at == datetime(2026, 11, 21, 21, 7, 20, 600491, tzinfo=UTC)
    lines = {line.sku: line for line in order.lines}
    assert {
        sku: (line.unit_price, line.total_amount, line.total_tax_amount) for sku, line in lines.items()
    } == {
        "TSHIRT-1": (3000, 3000, 600),
        "JEANS-1": (7000, 7000, 1400),
        "SNEAKERS-1": (10000, 10000, 2000),
    }
    assert {line.tax_rate for line in order.lines} == {2500}
    assert all(line.total_discount_amount == 0 and line.type is LineType.PHYSICAL for line in order.lines)
    assert lines["JEANS-1"].name == "Outfit" and lines["JEANS-1"].variant == "Jeans"
    assert order.shipping is not None
    assert (order.shipping.amount, order.shipping.tax_amount, order.shipping.tax_rate) == (1000, 200, 2500)
    assert order.shipping.method == "Standard"
    assert sum(line.total_amount for line in order.lines) + order.shipping.amount == 21000  # order total
    assert order.shipments == (
        Shipment(
            id="RnVsZmlsbG1lbnQ6MQ==",
            created_at=datetime(2026, 11, 21, 21, 7, 29, 396194, tzinfo=UTC),
            lines=(ShipmentLine(TSHIRT, 1), ShipmentLine(JEANS, 1)),
            number="1",
        ),
    )
    assert order.refunds == ()


def test_only_fulfilled_fulfillments_become_shipments() -> None:
    # Before the return: two FULFILLED parcels. After it, Saleor removed the sneakers
    # parcel and added a RETURNED one; neither of those is a shipment.
    before = shared.capture("0011_transaction_charge_requested").json()["transaction"]["order"]
    assert [s.number for s in order_snapshot(before, app_id=APP).order.shipments] == ["1", "2"]
    after = shared.capture("0018_transaction_cancelation_requested").json()["transaction"]["order"]
    assert {f["status"] for f in after["fulfillments"]} == {"FULFILLED", "RETURNED"}
    snap = order_snapshot(after, app_id=APP)
    assert [s.id for s in snap.order.shipments] == ["RnVsZmlsbG1lbnQ6MQ=="]
    assert snap.charged == 10000  # 200 charged, 100 refunded: chargedAmount is net of refunds


def test_refund_time_snapshot_charged() -> None:
    raw = shared.capture("0015_transaction_refund_requested").json()["transaction"]["order"]
    assert order_snapshot(raw, app_id=APP).charged == 20000


def test_other_apps_transaction_is_not_koms() -> None:
    raw = shared.capture("0003_fulfillment_created").json()["order"]
    snap = order_snapshot(raw, app_id="QXBwOjk5")
    assert (snap.transaction_id, snap.provider_order_id, snap.charged) == (None, None, 0)
