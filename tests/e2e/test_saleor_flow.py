"""End to end over real HTTP: Saleor (fake) -> KOM (uvicorn) -> Klarna (sandbox) -> Saleor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.klarna.sandbox import Fault
from tests.e2e.harness import Order, World, world

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as built:
        await built.install()
        yield built


async def ship_seed(w: World, shipping: tuple[str, str] | None = ("10.00", "0.25")) -> Order:
    order = await w.new_order(SEED, shipping=shipping)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1")
    await w.settle()
    w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-2")
    await w.settle()
    return order


def refund_lines(
    w: World, order: Order, *indexes: int, shipping: bool = False, reason: str | None = None
) -> str:
    grant = w.saleor.grant_refund(
        order.id,
        order.transaction,
        {order.lines[i]: 1 for i in indexes},
        include_shipping=shipping,
        reason=reason,
    )
    return w.saleor.request_refund_for_granted_refund(grant)


async def test_seed_order_two_parcels_two_captures_reported_as_charges(w: World) -> None:
    order = await ship_seed(w)
    captures = w.klarna(order).captures
    assert [c.captured_amount for c in captures] == [11000, 10000]
    assert [[line.reference for line in c.order_lines] for c in captures] == [
        ["TSHIRT/1", "JEANS/1", "SHIPPING/1"],
        ["SNEAKERS/2"],
    ]
    transaction = w.saleor.transaction(order.transaction)
    charges = transaction.of_type("CHARGE_SUCCESS")
    assert [e.psp_reference for e in charges] == [c.capture_id for c in captures]
    assert transaction.charged == Decimal("210.00")
    assert charges[0].message.startswith("Captured parcel 1 as Klarna invoice ") and charges[
        0
    ].external_url.startswith("https://portal")
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "in_sync"


async def test_sneakers_refund_lands_on_capture_b_and_is_reported(w: World) -> None:
    order = await ship_seed(w)
    fulfillment_line = None  # the return itself only moves goods in Saleor; the grant drives the refund
    del fulfillment_line
    refund_lines(w, order, 2, reason="Sneakers too small")
    await w.settle()
    ledger = await w.ledger(order)
    (refund,) = ledger["refunds"]
    assert refund["allocated"] and refund["capture_id"] == w.klarna(order).captures[1].capture_id
    transaction = w.saleor.transaction(order.transaction)
    (success,) = transaction.of_type("REFUND_SUCCESS")
    invoice = w.klarna(order).captures[1].klarna_reference
    klarna_refund = w.klarna(order).refunds[0]
    assert success.amount == Decimal("100.00")
    assert success.message == (
        f"Refunded €100.00 on Klarna invoice {invoice} (refund {klarna_refund.refund_id}). "
        "Reason: Sneakers too small"
    )
    assert (klarna_refund.description or "").startswith("Sneakers too small")  # kept at Klarna too
    # One short pspReference links the outcome to Saleor's request (and so to the grant).
    (requested,) = transaction.of_type("REFUND_REQUEST")
    assert success.psp_reference == requested.psp_reference and len(success.psp_reference) < 25
    assert transaction.refund_pending == 0 and transaction.refunded == Decimal("100.00")


async def test_return_spanning_both_parcels_is_two_refunds_one_report(w: World) -> None:
    order = await ship_seed(w)
    refund_lines(w, order, 0, 2, shipping=True)
    await w.settle()
    ledger = await w.ledger(order)
    assert [r["refunded_amount"] for r in ledger["refunds"]] == [4000, 10000]
    assert all(r["allocated"] for r in ledger["refunds"])
    (success,) = w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")
    assert success.amount == Decimal("140.00")
    assert success.message.startswith("Refunded €140.00, split over 2 invoices: Klarna invoice ")


async def test_one_sku_in_two_parcels_partial_quantities(w: World) -> None:
    order = await w.new_order([("MUG", "Mug", 3, "15.00", "0.25")])
    w.saleor.fulfill(order.id, {order.lines[0]: 2})
    await w.settle()
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    captures = w.klarna(order).captures
    assert [(c.order_lines[0].reference, c.order_lines[0].raw["quantity"]) for c in captures] == [
        ("MUG/1", 2),
        ("MUG/2", 1),
    ]
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[0]: 3})
    w.saleor.request_refund_for_granted_refund(grant)
    await w.settle()
    ledger = await w.ledger(order)
    assert [r["refunded_amount"] for r in ledger["refunds"]] == [3000, 1500]
    assert all(r["allocated"] for r in ledger["refunds"])


async def test_order_discount_is_carried_by_the_lines(w: World) -> None:
    order = await w.new_order(SEED, order_discount="20.00")
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.settle()
    captures = w.klarna(order).captures
    assert sum(c.captured_amount for c in captures) == 18000
    assert all(line.raw["total_discount_amount"] > 0 for c in captures for line in c.order_lines)


async def test_goodwill_refund_without_lines(w: World) -> None:
    order = await ship_seed(w)
    w.saleor.request_action(order.transaction, "REFUND", "12.50")
    await w.settle()
    ledger = await w.ledger(order)
    (refund,) = ledger["refunds"]
    assert refund["allocated"] and refund["refunded_amount"] == 1250
    (success,) = w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")
    assert success.amount == Decimal("12.50")


async def test_jpy_order(w: World) -> None:
    order = await w.new_order([("TEA", "Tea", 3, "1000", "0.08")], currency="JPY")
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    w.saleor.fulfill(order.id, {order.lines[0]: 2})
    await w.settle()
    assert [c.captured_amount for c in w.klarna(order).captures] == [1000, 2000]
    assert w.saleor.transaction(order.transaction).charged == Decimal("3000")


async def test_refund_of_goods_never_captured_is_refused_and_reported(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[2]: 1})  # only the sneakers shipped and were captured
    await w.settle()
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[0]: 1})  # the T-shirt
    w.saleor.request_refund_for_granted_refund(grant)
    await w.settle()
    assert w.klarna(order).refunds == []  # nothing sent that Klarna would misallocate
    (failure,) = w.saleor.transaction(order.transaction).of_type("REFUND_FAILURE")
    assert "T-shirt" in failure.message and "captured" in failure.message
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention" and "T-shirt" in (job.reason or "")


async def test_cancel_releases_the_remaining_authorization(w: World) -> None:
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    w.saleor.request_action(order.transaction, "CANCEL")
    await w.settle()
    state = w.klarna(order)
    assert state.remaining_authorized_amount == 0 and len(state.captures) == 1
    (cancel,) = w.saleor.transaction(order.transaction).of_type("CANCEL_SUCCESS")
    assert cancel.amount == Decimal("100.00")


async def test_provider_503_then_success(w: World) -> None:
    order = await w.new_order(SEED)
    w.fault(Fault.http_error(503, method="POST", path="/captures$"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    assert len(w.klarna(order).captures) == 1


async def test_provider_down_for_longer_retries_later(w: World) -> None:
    order = await w.new_order(SEED)
    w.fault(Fault.http_error(503, method="POST", path="/captures$"), count=3)  # all attempts of one pass
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    assert w.klarna(order).captures == []
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "pending" and job.attempts == 1
    w.clock.advance(60)
    await w.settle()
    assert len(w.klarna(order).captures) == 1


async def test_lost_capture_response_captures_once(w: World) -> None:
    order = await w.new_order(SEED)
    w.fault(Fault.lost_response(method="POST", path="/captures$"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    assert len(w.klarna(order).captures) == 1
    assert len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) == 1


async def test_forged_and_unsigned_webhooks_are_rejected_and_nothing_happens(w: World) -> None:
    genuine = await w.new_order(SEED)
    other = await w.new_order(SEED)
    w.saleor.fulfill(genuine.id, {genuine.lines[0]: 1})
    await w.saleor.deliver_pending()
    (attempt,) = [a for a in w.saleor.attempts if a.event_type == "FULFILLMENT_CREATED"]
    forged = attempt.body.replace(genuine.id.encode(), other.id.encode())
    url = f"{w.kom_url}/api/webhooks/fulfillment-created"
    response = await w.http.post(url, content=forged, headers=attempt.headers)
    assert response.status_code == 401 and "signature" in response.json()["error"].lower()
    unsigned = {k: v for k, v in attempt.headers.items() if "signature" not in k.lower()}
    assert (await w.http.post(url, content=attempt.body, headers=unsigned)).status_code == 401
    unknown = {**attempt.headers, "Saleor-Api-Url": "http://127.0.0.1:1/graphql/"}
    assert (await w.http.post(url, content=attempt.body, headers=unknown)).status_code == 401
    wrong_event = {**attempt.headers, "Saleor-Event": "order_updated"}
    assert (await w.http.post(url, content=attempt.body, headers=wrong_event)).status_code == 400
    await w.worker.drain()
    assert await w.store.order_job(1, other.id) is None
    assert len(w.klarna(other).captures) == 0 and len(w.klarna(genuine).captures) == 1


async def test_every_webhook_delivered_twice_and_out_of_order(tmp_path: Path) -> None:
    async with world(tmp_path, duplicate_deliveries=True, shuffle=True, host_without_port=True) as w:
        await w.install()
        order = await ship_seed(w)
        refund_lines(w, order, 0, 2)
        await w.settle()
        state = w.klarna(order)
        assert len(state.captures) == 2 and len(state.refunds) == 2
        transaction = w.saleor.transaction(order.transaction)
        assert (
            len(transaction.of_type("CHARGE_SUCCESS")) == 2
            and len(transaction.of_type("REFUND_SUCCESS")) == 1
        )
        assert all(r["allocated"] for r in (await w.ledger(order))["refunds"])


async def test_kom_down_then_restarted_on_the_same_database_loses_nothing(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.saleor.deliver_pending()  # recorded durably, then KOM is killed before any worker ran
    w.stop_kom()
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.saleor.deliver_pending()  # KOM is down: Saleor will retry
    w.start_kom()  # a new process on the same database
    await w.saleor.retry_failed()
    await w.settle()
    assert [c.captured_amount for c in w.klarna(order).captures] == [10000, 10000]
    assert len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) == 2


async def test_worker_restart_after_a_lost_response_does_not_capture_twice(w: World) -> None:
    order = await w.new_order(SEED)
    w.fault(Fault.lost_response(method="POST", path="/captures$"), count=3)  # every retry of the pass
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()  # the capture happened on Klarna, but KOM never saw an answer
    assert len(w.klarna(order).captures) == 1
    assert w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS") == []
    fresh = w.services().worker(worker_id="restarted")  # a new worker process after a crash
    w.clock.advance(60)
    assert await fresh.drain() == 1
    assert len(w.klarna(order).captures) == 1
    assert len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) == 1


async def test_saleor_key_rotated_right_after_install_is_fetched_for_the_first_webhook(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.rotate_key()  # moments after the install fetched the old key
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.saleor.deliver_pending()
    assert [a.status for a in w.saleor.attempts if a.event_type == "FULFILLMENT_CREATED"] == [200]
    await w.settle()
    assert len(w.klarna(order).captures) == 1
    installation = await w.store.installation(1)
    assert installation is not None
    assert [key["kid"] for key in installation.jwks["keys"]] == [w.saleor.key.kid]


async def test_reinstalled_kom_keeps_handling_orders_paid_before(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    assert w.app is not None
    await w.saleor.uninstall(w.app)
    await w.saleor.deliver_pending()
    await w.install()  # a new App id; Saleor keeps the transaction with the app identifier
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.settle()
    assert len(w.klarna(order).captures) == 2
    refund_lines(w, order, 2)
    await w.settle()
    assert [r["allocated"] for r in (await w.ledger(order))["refunds"]] == [True]


async def test_the_payment_offers_only_the_buttons_that_still_work(w: World) -> None:
    """Saleor keeps the availableActions KOM last set; KOM sets them from the Klarna order."""
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    # Part shipped: captured money to refund, the rest still authorized (KOM captures each
    # parcel itself, so no CHARGE button).
    assert sorted(w.saleor.transaction(order.transaction).actions) == ["CANCEL", "REFUND"]
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.settle()
    assert w.saleor.transaction(order.transaction).actions == ["REFUND"]  # fully captured
    refund_lines(w, order, 0, 1, 2, shipping=True)
    await w.settle()
    transaction = w.saleor.transaction(order.transaction)
    assert transaction.refunded == Decimal("210.00") and transaction.actions == []  # nothing left


async def test_a_cancelled_order_offers_no_capture_or_cancel(w: World) -> None:
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.cancel_order(order.id)
    await w.settle()
    transaction = w.saleor.transaction(order.transaction)
    assert transaction.of_type("CANCEL_SUCCESS") and transaction.actions == []
