"""pspReferences KOM answers Saleor's transaction requests with: short, stable, one per request."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from adapters.saleor.payloads import TransactionRequest, parse_payload
from adapters.saleor.requests import read_request
from tests.saleor.test_payloads import grant, refund_body

ORDER = {"id": "T3JkZXI6MQ==", "number": "12", "channel": {"slug": "default-channel"}}


def refund(issued: str = "2026-08-03T09:00:00+00:00", **changes: Any) -> Any:
    body = json.loads(refund_body(**changes))
    body["issuedAt"] = issued
    body["transaction"]["order"] = ORDER
    payload = parse_payload("TRANSACTION_REFUND_REQUESTED", json.dumps(body).encode())
    assert isinstance(payload, TransactionRequest)
    return read_request("TRANSACTION_REFUND_REQUESTED", payload)


def test_a_grant_request_names_the_grant_without_a_timestamp() -> None:
    request = refund(grant=grant())
    assert request.request_id == "T3JkZXJHcmFudGVkUmVmdW5kOjc="  # provider references still derive from it
    psp = request.psp_reference
    assert psp.startswith("kom-refund-7-") and len(psp) <= 24, psp
    assert "2026" not in psp and "saleor-refund" not in psp and psp.count("kom") == 1


def test_the_same_delivery_gives_the_same_psp_and_a_new_request_a_new_one() -> None:
    first = refund(grant=grant())
    assert refund(grant=grant()).psp_reference == first.psp_reference  # Saleor's re-delivery
    # Requested again after a refusal: Saleor dedups by (pspReference, type, amount), so the
    # second request's outcome needs its own pspReference or it would be swallowed.
    again = refund("2026-08-03T09:05:00+00:00", grant=grant())
    assert again.request_id == first.request_id and again.psp_reference != first.psp_reference


def test_an_amount_only_refund_has_no_doubled_prefix() -> None:
    request = refund()
    assert request.request_id.startswith("saleor-refund:")  # unchanged: its provider refunds exist
    assert request.psp_reference.startswith("kom-refund-") and ":" not in request.psp_reference
    assert len(request.psp_reference) == len("kom-refund-") + 10
    assert refund("2026-08-03T10:00:00+00:00").psp_reference != request.psp_reference


def test_charge_and_cancel_references_are_short() -> None:
    for event, action in (
        ("TRANSACTION_CHARGE_REQUESTED", "CHARGE"),
        ("TRANSACTION_CANCELATION_REQUESTED", "CANCEL"),
    ):
        body = json.loads(refund_body(action_type=action))
        body["__typename"] = (
            "TransactionChargeRequested" if action == "CHARGE" else "TransactionCancelationRequested"
        )
        body.pop("grantedRefund")
        body["transaction"]["order"] = ORDER
        request = read_request(event, parse_payload(event, json.dumps(body).encode()))  # type: ignore[arg-type]
        kind = "charge" if action == "CHARGE" else "cancel"
        assert request.psp_reference.startswith(f"kom-{kind}-") and len(request.psp_reference) <= 21
        assert datetime(2026, 8, 3, 9, tzinfo=UTC).isoformat() not in request.psp_reference
