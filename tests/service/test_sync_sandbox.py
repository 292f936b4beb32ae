"""sync_order end to end: real planner, real client, the sandbox on a real loopback socket."""

from __future__ import annotations

from dataclasses import replace

from adapters.klarna.sandbox import Fault
from plugin.demo import seed_order
from plugin.domain.snapshot import RefundLine, RefundRequest
from plugin.service.sync import sync_order
from tests.domain.builders import at
from tests.service.conftest import Sandbox

SNEAKERS = RefundRequest("r-1", at(100), (RefundLine("line-sneakers", 1),), reason="Returning the sneakers")
SPANNING = RefundRequest("r-2", at(100), (RefundLine("line-tshirt", 1), RefundLine("line-sneakers", 1)))


async def test_seed_order_captures_per_parcel_and_refund_lands_on_capture_b(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    provider = sandbox.provider()
    result = await sync_order(order, klarna_id, provider)
    assert len(result.done) == 2
    result = await sync_order(replace(order, refunds=(SNEAKERS,)), klarna_id, provider)
    assert len(result.done) == 1
    ledger = await sandbox.ledger(klarna_id)
    captures, refunds = ledger["captures"], ledger["refunds"]
    assert isinstance(captures, list) and isinstance(refunds, list)
    assert [r["capture_id"] for r in refunds] == [captures[1]["capture_id"]]
    assert all(r["allocated"] for r in refunds)


async def test_return_spanning_both_parcels_is_two_allocated_refunds(sandbox: Sandbox) -> None:
    order = seed_order(with_shipping=True)
    klarna_id = await sandbox.new_order(order)
    provider = sandbox.provider()
    await sync_order(order, klarna_id, provider)
    await sync_order(replace(order, refunds=(SPANNING,)), klarna_id, provider)
    ledger = await sandbox.ledger(klarna_id)
    refunds = ledger["refunds"]
    assert isinstance(refunds, list) and len(refunds) == 2 and all(r["allocated"] for r in refunds)
    assert ledger["unallocated_amount"] == 0


async def test_503_then_success_captures_once(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    sandbox.state.faults.add(Fault.http_error(503, method="POST", path="/captures$"), count=2)
    result = await sync_order(order, klarna_id, sandbox.provider())
    assert len(result.done) == 2
    assert len(sandbox.writes("/captures")) == 4  # two refused by the fault, two real
    order_json = (await sandbox.http.get(f"{sandbox.base_url}/_sandbox/orders")).json()
    assert sum(len(o["captures"]) for o in order_json if o["order_id"] == klarna_id) == 2


async def test_lost_capture_response_is_retried_with_the_same_key_and_captured_once(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    sandbox.state.faults.add(Fault.lost_response(method="POST", path="/captures$"))
    result = await sync_order(order, klarna_id, sandbox.provider())
    assert len(result.done) == 2
    first, retry, second = sandbox.writes("/captures")
    assert first.idempotency_key == retry.idempotency_key != second.idempotency_key  # type: ignore[attr-defined]
    assert len(sandbox.state.get(klarna_id).captures) == 2


async def test_outcome_unknown_then_a_later_pass_sees_the_capture_and_does_not_repeat_it(
    sandbox: Sandbox,
) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    sandbox.state.faults.add(Fault.lost_response(method="POST", path="/captures$"))
    first = await sync_order(order, klarna_id, sandbox.provider(attempts=1))  # e.g. the worker died here
    assert [f.action.key for f in first.transient] == ["capture:parcel-A"]
    assert "may or may not have been applied" in first.transient[0].reason
    # Parcel B does not wait for A: its references carry a number of its own.
    assert [d.action.key for d in first.done] == ["capture:parcel-B"] and first.waiting == []
    assert len(sandbox.state.get(klarna_id).captures) == 2
    result = await sync_order(order, klarna_id, sandbox.provider())
    assert result.done == [] and result.in_sync  # A's capture is on record: not repeated
    captures = sandbox.state.get(klarna_id).captures
    assert len(captures) == 2
    references = [line.reference for c in captures for line in c.order_lines]
    assert len(references) == len(set(references))


async def test_rate_limited_then_success(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    sandbox.state.faults.add(Fault.rate_limited(method="GET"))
    result = await sync_order(order, klarna_id, sandbox.provider())
    assert len(result.done) == 2
