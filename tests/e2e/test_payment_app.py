"""KOM as the payment app, end to end: the fake Saleor's checkout and transaction-session
flow (signed sync webhooks, answers parsed as Saleor parses them) -> KOM (uvicorn) -> the
Klarna sandbox, then the Order Management flow unchanged: two parcels, a return spanning both.

This covers adopting a Klarna order created elsewhere (Kustom Checkout, another checkout);
placing one from a Klarna Payments authorization needs the Klarna Payments client and
sandbox endpoints (branch pay-klarna) and is tested at the service level meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.klarna.sandbox import DEMO_API_KEY
from adapters.klarna.sandbox.validation import CaptureRequest
from plugin.store.store import ChannelSettings
from tests.e2e.harness import World, world
from tests.fakes.saleor.state import App, SaleorError

LINES = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
SHIPPING = ("10.00", "0.25")
TOTAL = 21000


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as built:
        installation = await built.install()
        await built.store.save_settings(
            installation.id,
            ChannelSettings(
                "",
                "klarna",
                "playground",
                "eu",
                DEMO_API_KEY,
                None,
                base_url=built.klarna_url,
                payments_enabled=True,
            ),
        )
        yield built


def app(w: World) -> App:
    assert w.app is not None
    return next(a for a in w.saleor.store.apps.values() if a.identifier == "app.kom.order-management")


async def klarna_order(w: World, amount: int = TOTAL, currency: str = "EUR") -> str:
    response = await w.http.post(
        f"{w.klarna_url}/_sandbox/orders", json={"purchase_currency": currency, "order_amount": amount}
    )
    return str(response.json()["order_id"])


async def test_adopted_order_two_parcels_and_a_return_spanning_both(w: World) -> None:
    checkout = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    klarna_id = await klarna_order(w)
    transaction, event, _ = await w.saleor.checkouts.transaction_initialize(
        checkout, app(w), {"providerOrderId": klarna_id}, "key-1"
    )
    assert (event.type, event.psp_reference, event.amount) == ("AUTHORIZATION_SUCCESS", klarna_id, TOTAL)
    order_id, order_transaction = w.saleor.checkouts.checkout_complete(checkout)
    order = w.saleor.order(order_id)
    lines = [line["id"] for line in order["lines"]]
    w.saleor.fulfill(order_id, {lines[0]: 1, lines[1]: 1}, tracking_number="PN-1")
    await w.settle()
    w.saleor.fulfill(order_id, {lines[2]: 1}, tracking_number="DHL-2")
    await w.settle()
    captures = w.sandbox.get(klarna_id).captures
    assert [c.captured_amount for c in captures] == [11000, 10000]
    grant = w.saleor.grant_refund(order_id, order_transaction, {lines[0]: 1, lines[2]: 1})
    w.saleor.request_refund_for_granted_refund(grant)
    await w.settle()
    ledger = (await w.http.get(f"{w.klarna_url}/_sandbox/orders/{klarna_id}/ledger")).json()
    refunds = ledger["refunds"]
    assert [r["refunded_amount"] for r in refunds] == [3000, 10000]
    assert all(r["allocated"] for r in refunds)
    assert [r["capture_id"] for r in refunds] == [c.capture_id for c in captures]
    (success,) = w.saleor.transaction(order_transaction).of_type("REFUND_SUCCESS")
    assert success.amount == Decimal("130.00")
    assert transaction  # the checkout's transaction is the order's (same app, same pspReference)


async def test_initialize_replayed_with_the_same_key_does_nothing_twice(w: World) -> None:
    checkout = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    klarna_id = await klarna_order(w)
    data = {"providerOrderId": klarna_id}
    # The storefront retries with the same key and amount (a bare retry would ask for the
    # 0.00 left after the authorization, which Saleor refuses as another transaction).
    first = await w.saleor.checkouts.transaction_initialize(checkout, app(w), data, "k", amount="210.00")
    reads = len(w.sandbox.request_log())
    again = await w.saleor.checkouts.transaction_initialize(checkout, app(w), data, "k", amount="210.00")
    assert again[0] == first[0] and again[1] is first[1]  # Saleor deduplicates the same answer
    assert len(w.sandbox.request_log()) == reads  # KOM replayed its stored answer: no Klarna call
    (_, replayed, status, _) = w.saleor.checkouts.sent[-1]
    assert status == 200 and replayed["idempotencyKey"] == "k"
    with pytest.raises(SaleorError, match="Different transaction"):
        await w.saleor.checkouts.transaction_initialize(checkout, app(w), data, "k")


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [(TOTAL - 100, "EUR", "is for"), (TOTAL, "SEK", "is in SEK")],
)
async def test_adopting_an_order_of_another_amount_or_currency_is_refused(
    w: World, amount: int, currency: str, reason: str
) -> None:
    checkout = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    klarna_id = await klarna_order(w, amount, currency)
    _, event, _ = await w.saleor.checkouts.transaction_initialize(
        checkout, app(w), {"providerOrderId": klarna_id}, "k"
    )
    assert event.type == "AUTHORIZATION_FAILURE" and reason in event.message
    with pytest.raises(SaleorError, match="CHECKOUT_NOT_FULLY_PAID"):
        w.saleor.checkouts.checkout_complete(checkout)


async def test_adopting_an_order_linked_already_or_captured_is_refused(w: World) -> None:
    first = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    klarna_id = await klarna_order(w)
    _, event, _ = await w.saleor.checkouts.transaction_initialize(
        first, app(w), {"providerOrderId": klarna_id}, "a"
    )
    assert event.type == "AUTHORIZATION_SUCCESS"
    second = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    _, event, _ = await w.saleor.checkouts.transaction_initialize(
        second, app(w), {"providerOrderId": klarna_id}, "b"
    )
    assert event.type == "AUTHORIZATION_FAILURE" and "linked to transaction" in event.message

    captured = await klarna_order(w)
    # Captured elsewhere (in the merchant portal) before anyone links it.
    w.sandbox.capture(captured, CaptureRequest(1000, None, None, (), ()))
    third = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    _, event, _ = await w.saleor.checkouts.transaction_initialize(
        third, app(w), {"providerOrderId": captured}, "c"
    )
    assert event.type == "AUTHORIZATION_FAILURE" and "captured already" in event.message
    order_id, _ = w.saleor.checkouts.checkout_complete(first)
    assert order_id


async def test_gateway_initialize_says_why_klarna_is_not_offered(w: World) -> None:
    installation = await w.store.installation_by_url(w.saleor.api_url)
    assert installation is not None
    await w.store.save_settings(
        installation.id,
        ChannelSettings(
            "",
            "klarna",
            "playground",
            "eu",
            DEMO_API_KEY,
            None,
            base_url=w.klarna_url,
            payments_enabled=False,
        ),
    )
    checkout = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    config = await w.saleor.checkouts.payment_gateway_initialize(checkout, app(w))
    assert config["errors"] == []  # KOM answered in Saleor's shape: {"data": ...}
    assert "turned off" in config["data"]["errors"][0]["message"]


async def test_shopper_from_a_country_not_allowed_is_refused_with_the_reason(w: World) -> None:
    installation = await w.store.installation_by_url(w.saleor.api_url)
    assert installation is not None
    await w.store.save_settings(
        installation.id,
        ChannelSettings(
            "",
            "klarna",
            "playground",
            "eu",
            DEMO_API_KEY,
            None,
            base_url=w.klarna_url,
            payments_enabled=True,
            purchase_countries=("FI",),
        ),
    )
    checkout = w.saleor.checkouts.create(LINES, shipping=SHIPPING, country="SE")
    klarna_id = await klarna_order(w)
    _, event, data = await w.saleor.checkouts.transaction_initialize(
        checkout, app(w), {"providerOrderId": klarna_id}, "k"
    )
    assert event.type == "AUTHORIZATION_FAILURE" and "from FI, not SE" in event.message
    assert data == {"errors": [{"message": event.message}]}  # the storefront learns why


async def test_a_forged_session_webhook_is_refused_and_saleor_records_its_own_failure(w: World) -> None:
    checkout = w.saleor.checkouts.create(LINES, shipping=SHIPPING)
    klarna_id = await klarna_order(w)
    w.saleor.rotate_key()  # Saleor now signs with a key KOM cannot fetch as Saleor's: forged
    w.saleor.checkouts.saleor.jwks = lambda: {"keys": []}  # type: ignore[method-assign]
    _, event, _ = await w.saleor.checkouts.transaction_initialize(
        checkout, app(w), {"providerOrderId": klarna_id}, "k"
    )
    assert (event.type, event.message) == ("AUTHORIZATION_FAILURE", "Failed to delivery request.")
    assert w.saleor.checkouts.sent[-1][2] == 401
    assert await w.store.payment_transaction(1, "k") is None  # nothing recorded
