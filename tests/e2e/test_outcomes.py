"""Every outcome true, prompt and visible, with faults: over real HTTP through the fake Saleor,
KOM and the sandbox (issue 10, items 1, 3, 4 and 8)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.klarna.sandbox import Fault
from plugin.service.worker import WorkerConfig
from tests.e2e.harness import Order, World, world

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
REPORT = """
mutation Report($id: ID!, $psp: String!, $amount: PositiveDecimal) {
  transactionEventReport(id: $id, type: REFUND_SUCCESS, pspReference: $psp, amount: $amount) {
    errors { code }
  }
}
"""


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as built:
        await built.install()
        yield built


async def shipped(w: World) -> Order:
    """The seed order, both parcels shipped, captured and reported."""
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1")
    w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-2")
    await w.settle()
    return order


def request_refund(w: World, order: Order, *indexes: int) -> str:
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[i]: 1 for i in indexes})
    w.saleor.request_refund_for_granted_refund(grant)
    return grant


def captures_attempted(w: World) -> int:
    return sum(1 for r in w.sandbox.request_log() if r.method == "POST" and r.path.endswith("/captures"))


async def test_a_refused_capture_fails_its_parcel_only_and_everything_else_goes_on(w: World) -> None:
    order = await w.new_order(SEED)
    w.fault(
        Fault.http_error(403, method="POST", path="/captures$", error_code="CAPTURE_NOT_ALLOWED", after=1)
    )
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.settle()

    (capture,) = w.klarna(order).captures  # parcel 1, made in the same pass as the refusal ...
    (charge,) = w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")
    assert charge.psp_reference == capture.capture_id and charge.amount == Decimal(
        "100.00"
    )  # ... and reported
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention" and job.correlation_id
    assert "Parcel 2 (€100.00) could not be captured" in (job.reason or "")
    assert job.reason == (
        "Parcel 2 (€100.00) could not be captured: The provider refused the capture (capture not "
        "allowed, HTTP 403): Sandbox fault injected: the service is not available."
    )  # one sentence, and the correlation id only beside it, once
    assert job.correlation_id not in job.reason and "order" not in job.reason

    request_refund(w, order, 0)  # the T-shirt of parcel 1: nothing to do with parcel 2
    await w.settle()
    assert [r.refunded_amount for r in w.klarna(order).refunds] == [3000]
    (refunded,) = w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")
    assert refunded.amount == Decimal("30.00")
    assert captures_attempted(w) == 2  # the refused capture was not sent again
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention" and "Parcel 2" in (job.reason or "")


async def test_a_refund_the_provider_refuses_is_answered_with_the_reason_and_other_work_goes_on(
    w: World,
) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    w.fault(Fault.http_error(403, method="POST", path="/refunds$", error_code="REFUND_NOT_ALLOWED"))
    request_refund(w, order, 0)
    w.saleor.fulfill(order.id, {order.lines[2]: 1})  # the next parcel ships in the same pass
    await w.settle()

    transaction = w.saleor.transaction(order.transaction)
    (failure,) = transaction.of_type("REFUND_FAILURE")
    assert failure.message.startswith("The provider refused the refund (refund not allowed, HTTP 403): ")
    assert failure.message.count("Correlation id") == 1 and transaction.of_type("REFUND_SUCCESS") == []
    assert len(transaction.of_type("CHARGE_SUCCESS")) == 2 and len(w.klarna(order).captures) == 2
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention"
    assert job.reason == (
        "A refund of €30.00 failed: The provider refused the refund (refund not allowed, HTTP 403): "
        "Sandbox fault injected: the service is not available."
    )


async def test_a_report_saleor_refuses_is_kept_as_refused_and_holds_back_no_other(w: World) -> None:
    order = await shipped(w)
    request_refund(w, order, 0)
    request_refund(w, order, 2)
    await w.saleor.deliver_pending()  # KOM recorded both requests and answered with their pspReference
    first, second = w.saleor.transaction(order.transaction).of_type("REFUND_REQUEST")
    # Saleor already holds a REFUND_SUCCESS for the first with another amount: it refuses KOM's.
    assert w.app is not None
    answer = w.saleor.execute(
        REPORT, {"id": order.transaction, "psp": first.psp_reference, "amount": "1.00"}, token=w.app.token
    )
    assert answer["data"]["transactionEventReport"]["errors"] == []

    await w.settle()

    assert sorted(r.refunded_amount for r in w.klarna(order).refunds) == [3000, 10000]
    successes = w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")
    assert [(e.psp_reference, e.amount) for e in successes] == [
        (first.psp_reference, Decimal("1.00")),
        (second.psp_reference, Decimal("100.00")),  # sent after the refused one
    ]
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention"
    assert job.reason == (
        f"Saleor did not record the refund {first.psp_reference}: The transaction with provided "
        "`pspReference` and `type` already exists with different amount."
    )  # one sentence: no enum names, no doubled "refused"
    refused = [r for r in await w.store.order_reports(1, order.id) if r.state == "refused"]
    assert [r.report.psp_reference for r in refused] == [first.psp_reference]

    await w.store.touch_order(1, order.id)  # another pass: the refused report is not sent again
    await w.settle()
    assert len(w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")) == 2


async def test_a_partly_sent_refund_reports_what_moved_and_asks_for_the_rest(w: World) -> None:
    order = await shipped(w)
    w.fault(Fault.http_error(403, method="POST", path="/refunds$", error_code="REFUND_NOT_ALLOWED", after=1))
    request_refund(w, order, 0, 2)  # T-shirt (parcel 1) and sneakers (parcel 2): two refunds
    await w.settle()

    assert [r.refunded_amount for r in w.klarna(order).refunds] == [3000]
    transaction = w.saleor.transaction(order.transaction)
    assert transaction.of_type("REFUND_FAILURE") == []  # money moved: never a failure
    (refunded,) = transaction.of_type("REFUND_SUCCESS")
    assert refunded.amount == Decimal("30.00") and "the rest was not refunded" in refunded.message
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention"
    assert "only partly sent" in (job.reason or "") and "€100.00 was not refunded" in (job.reason or "")
    assert "Retry now" in (job.reason or "")  # what to do about it

    await w.store.touch_order(1, order.id)
    await w.settle()
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention"  # never a silent in_sync
    assert len(w.klarna(order).refunds) == 1  # the rest is not sent behind the merchant's back

    assert await w.store.retry_now(1, order.id)  # the merchant dealt with it
    await w.settle()
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "in_sync"


async def test_a_cancel_whose_first_report_failed_is_later_reported_as_the_same_success(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    w.saleor.request_action(order.transaction, "CANCEL")
    w.platform_faults.add("TransactionEventReport", contains="CANCEL_SUCCESS")
    await w.settle()
    assert w.platform_faults.pending() == 0
    assert w.saleor.transaction(order.transaction).of_type("CANCEL_SUCCESS") == []
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "pending"  # comes back after a backoff

    w.clock.advance(60)
    await w.settle()
    transaction = w.saleor.transaction(order.transaction)
    (cancel,) = transaction.of_type("CANCEL_SUCCESS")
    assert cancel.amount == Decimal("100.00") and transaction.of_type("CANCEL_FAILURE") == []
    assert (
        len([r for r in w.sandbox.request_log() if r.path.endswith("/release-remaining-authorization")]) == 1
    )


async def test_a_reread_lagging_behind_a_201_changes_no_report(w: World) -> None:
    order = await w.new_order(SEED)
    w.lagging.arm(order.klarna_id, count=3)  # every read after the first shows the order as before
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    (charge,) = w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")
    # Amounts come from Klarna's 201 and KOM's record; a capture is read back only for its
    # invoice number, so a read that lags behind it changes no amount.
    assert charge.amount == Decimal("100.00")

    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.settle()
    w.lagging.arm(order.klarna_id, count=3)
    request_refund(w, order, 2)
    await w.settle()
    transaction = w.saleor.transaction(order.transaction)
    assert transaction.of_type("REFUND_FAILURE") == []  # not "nothing refunded"
    (refunded,) = transaction.of_type("REFUND_SUCCESS")
    assert refunded.amount == Decimal("100.00")
    assert len(w.klarna(order).refunds) == 1
    assert len([r for r in w.sandbox.request_log() if r.path.endswith("/refunds")]) == 1


async def test_a_lost_fulfillment_webhook_is_healed_by_the_sweep_within_its_interval(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    interval = 2.0
    worker = w.services().worker(
        WorkerConfig(sweep_every=timedelta(seconds=interval), idle_sleep=0.05), worker_id="sweeper"
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(0.3)  # its first sweep ran at start
        w.saleor.fulfill(order.id, {order.lines[2]: 1})
        lost = w.saleor.pending()
        assert {d.event_type for d in lost} >= {"FULFILLMENT_CREATED"}
        for delivery in lost:  # Saleor never delivers them
            delivery.state = "dropped"
        started = time.monotonic()
        while len(w.klarna(order).captures) < 2:
            assert time.monotonic() - started < interval + 3, "the sweep did not heal the lost webhook"
            await asyncio.sleep(0.05)
        healed = time.monotonic() - started
    finally:
        stop.set()
        await running
    assert healed <= interval + 3
    assert len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) == 2


async def test_a_refused_parcel_holds_back_no_later_one_and_is_captured_on_retry_with_its_own_references(
    w: World,
) -> None:
    order = await w.new_order(SEED)
    w.fault(
        Fault.http_error(403, method="POST", path="/captures$", error_code="CAPTURE_NOT_ALLOWED", after=1)
    )
    for index in range(3):  # three parcels, one item each: the second one is refused
        w.saleor.fulfill(order.id, {order.lines[index]: 1})
    await w.settle()

    made = w.klarna(order).captures
    assert sorted(c.captured_amount for c in made) == [3000, 10000]  # parcels 1 and 3 ...
    charges = w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")
    assert sorted(c.psp_reference for c in charges) == sorted(c.capture_id for c in made)  # ... reported
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "needs_attention"
    assert "Parcel 2 (€70.00) could not be captured" in (job.reason or "") and "capture not allowed" in (
        job.reason or ""
    )

    assert await w.store.retry_now(1, order.id)  # the merchant pressed Retry now
    await w.settle()
    captures = w.klarna(order).captures
    assert sorted(c.captured_amount for c in captures) == [3000, 7000, 10000]
    references = [line.reference for c in captures for line in c.order_lines]
    assert len(references) == len(set(references))  # parcel 2 took numbers of its own
    charges = w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")
    assert sorted(c.psp_reference for c in charges) == sorted(c.capture_id for c in captures)
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "in_sync"

    for index in range(3):  # everything comes back, one return per parcel
        request_refund(w, order, index)
    await w.settle()
    klarna = w.sandbox.get(w.klarna(order).order_id)
    ledger = klarna.ledger()  # the sandbox's allocation rule, not KOM's
    holder = {c.captured_amount: c.capture_id for c in captures}
    assert {a.refunded_amount: a.capture_id for a in ledger.allocations} == holder  # each on its invoice
    assert ledger.unallocated_amount == 0
    refunded = w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")
    assert sorted(r.amount for r in refunded) == [Decimal("30.00"), Decimal("70.00"), Decimal("100.00")]
