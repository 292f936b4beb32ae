"""Reading the payment-app session payloads: the checkout must be payable exactly."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from adapters.saleor.payloads import PayloadError
from adapters.saleor.sessions import checkout_from, parse_session, session_data


def _taxed(gross: str, net: str, tax: str) -> dict[str, Any]:
    return {"gross": {"amount": gross, "currency": "EUR"}, "net": {"amount": net}, "tax": {"amount": tax}}


PAYLOAD: dict[str, Any] = {
    "__typename": "TransactionInitializeSession",
    "issuedAt": "2026-12-05T00:00:00+00:00",
    "recipient": {"id": "QXBwOjE="},
    "data": {"authorizationToken": "tok"},
    "merchantReference": "VHJhbnNhY3Rpb25JdGVtOjE=",
    "idempotencyKey": "key-1",
    "action": {"amount": "40.00", "currency": "EUR", "actionType": "CHARGE"},
    "transaction": {"id": "VHJhbnNhY3Rpb25JdGVtOjE=", "pspReference": ""},
    "sourceObject": {
        "__typename": "Checkout",
        "id": "Q2hlY2tvdXQ6MQ==",
        "languageCode": "SV_SE",
        "channel": {"slug": "default-channel", "currencyCode": "EUR", "defaultCountry": {"code": "SE"}},
        "billingAddress": {"country": {"code": "FI"}},
        "lines": [
            {
                "id": "Q2hlY2tvdXRMaW5lOjE=",
                "quantity": 2,
                "variant": {
                    "id": "UHJvZHVjdFZhcmlhbnQ6MQ==",
                    "sku": "MUG",
                    "name": "Blue",
                    "product": {"name": "Mug"},
                },
                "unitPrice": _taxed("15.00", "12.00", "3.00"),
                "totalPrice": _taxed("30.00", "24.00", "6.00"),
            }
        ],
        "shippingPrice": _taxed("10.00", "8.00", "2.00"),
        "totalPrice": _taxed("40.00", "32.00", "8.00"),
    },
}


def body(payload: dict[str, Any]) -> bytes:
    # Saleor's Decimal scalars are JSON numbers: write every amount unquoted.
    return re.sub(r'"amount": "([0-9.]+)"', r'"amount": \1', json.dumps(payload)).encode()


def test_checkout_in_minor_units_with_locale_and_country() -> None:
    checkout = checkout_from(parse_session("TRANSACTION_INITIALIZE_SESSION", body(PAYLOAD)))
    assert (checkout.total_amount, checkout.total_tax_amount, checkout.shipping_amount) == (4000, 800, 1000)
    (line,) = checkout.lines
    assert (line.reference, line.name, line.quantity, line.unit_price, line.total_amount) == (
        "MUG",
        "Mug / Blue",
        2,
        1500,
        3000,
    )
    assert (checkout.country, checkout.locale) == ("FI", "sv-SE")


def test_lines_that_do_not_add_up_to_the_total_are_refused() -> None:
    payload = copy.deepcopy(PAYLOAD)
    payload["sourceObject"]["totalPrice"] = _taxed("39.99", "32.00", "7.99")
    with pytest.raises(PayloadError, match="do not add up"):
        checkout_from(parse_session("TRANSACTION_INITIALIZE_SESSION", body(payload)))


def test_net_plus_tax_must_be_gross() -> None:
    payload = copy.deepcopy(PAYLOAD)
    payload["sourceObject"]["shippingPrice"] = _taxed("10.00", "8.00", "7.00")
    with pytest.raises(PayloadError, match="is not gross"):
        checkout_from(parse_session("TRANSACTION_INITIALIZE_SESSION", body(payload)))


def test_an_order_is_not_paid_through_a_session() -> None:
    payload = copy.deepcopy(PAYLOAD)
    payload["sourceObject"] = {"__typename": "Order", "id": "T3JkZXI6MQ=="}
    with pytest.raises(PayloadError, match="checkouts, not for a Order"):
        checkout_from(parse_session("TRANSACTION_INITIALIZE_SESSION", body(payload)))


def test_initialize_needs_its_idempotency_key_and_one_kind_of_data() -> None:
    payload = copy.deepcopy(PAYLOAD)
    del payload["idempotencyKey"]
    with pytest.raises(PayloadError, match="idempotencyKey"):
        parse_session("TRANSACTION_INITIALIZE_SESSION", body(payload))
    both = copy.deepcopy(PAYLOAD)
    both["data"] = {"authorizationToken": "tok", "providerOrderId": "o-1"}
    with pytest.raises(PayloadError, match="not both"):
        session_data(parse_session("TRANSACTION_INITIALIZE_SESSION", body(both)))


def test_amounts_as_strings_are_refused() -> None:
    with pytest.raises(PayloadError, match="JSON number"):
        parse_session("TRANSACTION_INITIALIZE_SESSION", json.dumps(PAYLOAD).encode())
