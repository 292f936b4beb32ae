"""Payload parsing and the refund-request rules (grants capped silently, goodwill ids)."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.saleor.payloads import (
    AppDeleted,
    EmptyPayload,
    FulfillmentCanceled,
    PayloadError,
    TransactionRefundRequested,
    parse_payload,
    refund_request_from,
)
from plugin.domain.snapshot import RefundLine

ISSUED = "2026-08-03T09:00:00+00:00"


def refund_body(
    *, action: Any = 59.99, action_type: str = "REFUND", grant: dict[str, Any] | None = None, **extra: Any
) -> bytes:
    body: dict[str, Any] = {
        "__typename": "TransactionRefundRequested",
        "issuedAt": ISSUED,
        "version": "3.23.28",
        "recipient": {"id": "QXBwOjQy"},
        "action": {"actionType": action_type, "amount": action, "currency": "EUR"},
        "transaction": {"id": "VHJhbnNhY3Rpb25JdGVtOjE=", "pspReference": "k-1", "chargedAmount": None},
        "grantedRefund": grant,
        **extra,
    }
    return json.dumps(body).encode()


def grant(
    amount: Any = 59.99, *, lines: Any = (("T3JkZXJMaW5lOjE=", 1),), shipping: bool = False
) -> dict[str, Any]:
    return {
        "id": "T3JkZXJHcmFudGVkUmVmdW5kOjc=",
        "amount": {"amount": amount, "currency": "EUR"},
        "reason": "returned",
        "shippingCostsIncluded": shipping,
        "lines": [
            {"id": f"GL{i}", "quantity": q, "reason": None, "orderLine": {"id": lid}}
            for i, (lid, q) in enumerate(lines)
        ],
    }


def request_from(body: bytes) -> Any:
    payload = parse_payload("TRANSACTION_REFUND_REQUESTED", body)
    assert isinstance(payload, TransactionRefundRequested)
    return refund_request_from(payload)


def test_granted_refund() -> None:
    request = request_from(refund_body(grant=grant(shipping=True)))
    assert request.id == "T3JkZXJHcmFudGVkUmVmdW5kOjc="
    assert request.lines == (RefundLine("T3JkZXJMaW5lOjE=", 1),)
    assert request.include_shipping is True
    assert request.amount == 5999
    assert request.reason == "returned"
    assert request.created_at.isoformat() == ISSUED


@pytest.mark.parametrize(
    ("action", "granted", "expected"), [(100.0, 30.0, 3000), (30.0, 100.0, 3000), (0, 50, 0)]
)
def test_never_more_than_granted_nor_requested(action: float, granted: float, expected: int) -> None:
    # Saleor caps a grant at the charged amount silently, and a 0.00 grant was seen to
    # produce a request for the whole charged amount.
    assert request_from(refund_body(action=action, grant=grant(granted))).amount == expected


def test_zero_quantity_grant_lines_are_dropped() -> None:
    request = request_from(refund_body(grant=grant(lines=[("A", 0), ("B", 2)])))
    assert request.lines == (RefundLine("B", 2),)


def test_goodwill_refund() -> None:
    request = request_from(refund_body(action=12.5))
    assert request.lines == () and request.amount == 1250 and request.reason is None
    assert request.id.startswith("saleor-refund:")
    assert request_from(refund_body(action=12.5)).id == request.id  # Saleor retries are byte-identical
    assert request_from(refund_body(action=12.6)).id != request.id
    assert request_from(refund_body(action=12.5, issuedAt="2026-08-03T09:00:01+00:00")).id != request.id
    other = json.loads(refund_body(action=12.5))
    other["transaction"]["id"] = "VHJhbnNhY3Rpb25JdGVtOjI="
    assert request_from(json.dumps(other).encode()).id != request.id


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (refund_body(action=1.001), "decimal places"),
        (refund_body(grant={**grant(), "amount": {"amount": 5, "currency": "SEK"}}), "SEK"),
        (refund_body(grant=grant(lines=[("A", -1)])), "negative"),
        (refund_body(issuedAt=None), "issuedAt"),
        (refund_body(transaction=None), "transaction"),
        (refund_body(action_type="CHARGE"), "CHARGE"),
    ],
)
def test_refund_request_errors(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        request_from(body)


def with_raw_amount(number: str) -> bytes:
    # json.dumps would write a float's repr; Saleor writes the Decimal's digits.
    return refund_body(action=1.25).replace(b'"amount": 1.25', f'"amount": {number}'.encode())


def test_amounts_are_read_from_the_json_text_never_through_float() -> None:
    exact = parse_payload("transaction_refund_requested", with_raw_amount("90071992547409.93"))
    assert isinstance(exact, TransactionRefundRequested)
    assert exact.action.amount == Decimal("90071992547409.93")  # as a float: ...09.94
    with pytest.raises(PayloadError, match="beyond any amount"):
        refund_request_from(exact)
    with pytest.raises(PayloadError, match="decimal places"):  # as a float: 20.00, accepted
        request_from(with_raw_amount("19.999999999999999"))
    assert request_from(with_raw_amount("1E+1")).amount == 1000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (with_raw_amount("NaN"), "not a JSON number"),
        (refund_body(action="59.99"), "JSON number"),
        (refund_body(action=True), "JSON number"),
        (refund_body(grant=grant(lines=[("A", "2")])), "valid integer"),
        (refund_body(grant=grant(lines=[("A", True)])), "valid integer"),
        (refund_body(grant=grant(lines=[("A", 2**31)])), "impossible quantity"),
        (refund_body(grant=grant(lines=[("A", 0), ("B", 0)])), "all with quantity 0"),
        (refund_body(issuedAt="2026-08-03T09:00:00"), "UTC offset"),
        (refund_body(issuedAt=1785747600), "ISO 8601"),
        (refund_body(grant={**grant(), "id": "G\u0000"}), "control characters"),
        (refund_body(grant={**grant(), "id": "G" * 129}), "1 to 128"),
        (refund_body(action=-0.01), "negative"),
        (refund_body(action=21474836.48), "beyond any amount"),
    ],
)
def test_what_saleor_never_sends_is_refused_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        request_from(body)


def test_the_currency_must_be_the_orders_and_the_transactions() -> None:
    order = {"id": "T3JkZXI6MQ==", "channel": {"slug": "eu", "currencyCode": "SEK"}}
    transaction = {"id": "VHJhbnNhY3Rpb25JdGVtOjE=", "order": order}
    with pytest.raises(PayloadError, match="the order is in SEK"):
        request_from(refund_body(transaction=transaction))
    charged = {"id": "VHJhbnNhY3Rpb25JdGVtOjE=", "chargedAmount": {"amount": 5.0, "currency": "USD"}}
    with pytest.raises(PayloadError, match="chargedAmount is in USD"):
        request_from(refund_body(transaction=charged))
    for code in ("EURO", "eur", "", "E1R"):
        body = json.loads(refund_body())
        body["action"]["currency"] = code
        with pytest.raises(PayloadError, match="ISO 4217"):
            request_from(json.dumps(body).encode())


def test_parse_by_header_or_enum_name() -> None:
    body = b'{"__typename": "AppDeleted", "issuedAt": null, "app": {"id": "QXBwOjQy"}, "extra": 1}'
    for event in ("app_deleted", "APP_DELETED"):
        payload = parse_payload(event, body)
        assert isinstance(payload, AppDeleted) and payload.app is not None and payload.app.id == "QXBwOjQy"
    canceled = parse_payload("fulfillment_canceled", b'{"fulfillment": {"id": "F1", "status": "CANCELED"}}')
    assert isinstance(canceled, FulfillmentCanceled) and canceled.fulfillment is not None


@pytest.mark.parametrize("body", [b"", b"  \n", b"\t"])
def test_empty_bodies(body: bytes) -> None:
    with pytest.raises(EmptyPayload):
        parse_payload("transaction_refund_requested", body)


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("order_updated", b"{}"),
        ("transaction_refund_requested", b"{"),
        ("transaction_refund_requested", b"[]"),
        ("transaction_refund_requested", b"{}"),  # action is required
        ("fulfillment_created", b'{"__typename": "FulfillmentCanceled"}'),
        ("fulfillment_created", b'{"fulfillment": {"id": 5}}'),
        ("fulfillment_created", b'{"errors": "x"}'),
    ],
)
def test_not_this_payload(event: str, body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_payload(event, body)


def test_resolver_errors_are_kept() -> None:
    payload = parse_payload("fulfillment_created", b'{"errors": [{"message": "boom"}], "fulfillment": null}')
    assert payload.errors == [{"message": "boom"}]


@given(st.binary(max_size=300))
def test_fuzz_only_payload_errors(body: bytes) -> None:
    _only_payload_errors(body)


def _only_payload_errors(body: bytes) -> None:
    for event in ("fulfillment_created", "transaction_refund_requested", "app_deleted"):
        try:
            payload = parse_payload(event, body)
        except PayloadError:
            continue
        if isinstance(payload, TransactionRefundRequested):
            with contextlib.suppress(PayloadError):
                refund_request_from(payload)


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
_KEYS: tuple[str, ...] = (
    "__typename",
    "issuedAt",
    "action",
    "actionType",
    "amount",
    "currency",
    "grantedRefund",
)
_KEYS += ("transaction", "id", "lines", "quantity", "orderLine", "shippingCostsIncluded", "reason", "errors")
_keys = st.sampled_from(_KEYS)
_objects = st.recursive(
    st.dictionaries(_keys, _scalars, max_size=5),
    lambda inner: st.dictionaries(_keys, inner | _values | st.lists(inner, max_size=2), max_size=6),
    max_leaves=20,
)


@given(_objects)
def test_fuzz_structured_only_payload_errors(document: dict[str, Any]) -> None:
    _only_payload_errors(json.dumps(document).encode())
