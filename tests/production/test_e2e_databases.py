"""A selection of the end-to-end scenarios (tests/e2e) on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.klarna.sandbox import Fault
from tests.e2e.harness import World
from tests.e2e.test_saleor_flow import SEED, refund_lines, ship_seed
from tests.production.test_workers import world_on


@pytest.fixture
async def w(database_url: str) -> AsyncIterator[World]:
    async with world_on(database_url) as built:
        await built.install()
        yield built


async def test_return_spanning_both_parcels(w: World) -> None:
    order = await ship_seed(w)
    refund_lines(w, order, 0, 2, shipping=True)
    await w.settle()
    ledger = await w.ledger(order)
    assert [r["refunded_amount"] for r in ledger["refunds"]] == [4000, 10000]
    assert all(r["allocated"] for r in ledger["refunds"])


async def test_provider_down_then_lost_response_captures_once(w: World) -> None:
    order = await w.new_order(SEED)
    w.fault(Fault.http_error(503, method="POST", path="/captures$"), count=3)
    w.fault(Fault.lost_response(method="POST", path="/captures$"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    job = await w.store.order_job(1, order.id)
    assert job is not None and job.state == "pending" and job.attempts == 1  # retried later
    w.clock.advance(60)
    await w.settle()
    assert len(w.klarna(order).captures) == 1
    assert len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) == 1


async def test_kom_restarted_on_the_same_database_loses_nothing(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.saleor.deliver_pending()
    w.stop_kom()
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await w.saleor.deliver_pending()
    w.start_kom()
    await w.saleor.retry_failed()
    await w.settle()
    assert [c.captured_amount for c in w.klarna(order).captures] == [10000, 10000]
