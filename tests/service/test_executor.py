"""Each action on its own (plugin/service/sync.py), through the real sandbox: a failure holds
back only what depends on it, and every outcome is recorded as the provider answers.

Plans come from the real planner, or are built by hand for the actions the planner makes
in cases these tests do not set up (tracking for a re-fulfilment, releasing a cancelled
order's authorization)."""

from __future__ import annotations

from dataclasses import replace

from adapters.klarna.sandbox import Fault
from plugin.composition import classify
from plugin.demo import seed_order
from plugin.domain.actions import CaptureAction, Plan, ReleaseAction, ShippingInfoAction, idempotency_key
from plugin.domain.plan import plan
from plugin.domain.snapshot import Order, RefundLine, RefundRequest, Tracking
from plugin.service.records import Outcome
from plugin.service.sync import SyncResult, execute, sync_order
from tests.domain.builders import at
from tests.service.conftest import Sandbox

TSHIRT = RefundRequest("r-tshirt", at(100), (RefundLine("line-tshirt", 1),))
SNEAKERS = RefundRequest("r-sneakers", at(101), (RefundLine("line-sneakers", 1),))
SPANNING = RefundRequest("r-both", at(102), (RefundLine("line-tshirt", 1), RefundLine("line-sneakers", 1)))
JEANS = RefundRequest("r-jeans", at(103), (RefundLine("line-jeans", 1),))


class Recorder:
    """Outcomes as the worker's store would get them, in order."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def final(self) -> dict[str, str]:
        return {o.key: o.status for o in self.outcomes if o.status != "started"}


async def sync(
    sandbox: Sandbox, order: Order, klarna_id: str, recorder: Recorder, attempts: int = 1
) -> SyncResult:
    return await sync_order(order, klarna_id, sandbox.provider(attempts), record=recorder, classify=classify)


def keys(items: list[object]) -> list[str]:
    return [getattr(item, "action", item).key for item in items]


async def test_a_refused_capture_fails_its_parcel_and_a_refund_on_another_capture_goes_on(
    sandbox: Sandbox,
) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    recorder = Recorder()
    await sync(sandbox, replace(order, shipments=order.shipments[:1]), klarna_id, recorder)  # parcel A
    sandbox.state.faults.add(
        Fault.http_error(403, method="POST", path="/captures$", error_code="CAPTURE_NOT_ALLOWED")
    )

    result = await sync(sandbox, replace(order, refunds=(TSHIRT,)), klarna_id, recorder)

    assert (
        keys(result.failed) == ["capture:parcel-B"]
        and "capture not allowed, HTTP 403" in result.failed[0].reason
    )
    assert result.failed[0].correlation_id
    assert keys(result.done) == ["refund:r-tshirt:kom:s:parcel-A"]
    assert not result.transient and not result.captures_pending  # permanent: nothing to wait for
    assert [r.refunded_amount for r in sandbox.state.get(klarna_id).refunds] == [3000]
    failed = [o for o in recorder.outcomes if o.status == "failed"]
    assert [(o.kind, o.parcel, o.amount) for o in failed] == [("capture", 2, 10000)]


async def test_a_capture_that_fails_for_now_holds_back_its_refund_only(
    sandbox: Sandbox,
) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    sandbox.state.faults.add(Fault.http_error(503, method="POST", path="/captures$", after=1))
    recorder = Recorder()

    # Both parcels shipped, nothing captured yet: each refund comes out of a capture planned now.
    result = await sync(sandbox, replace(order, refunds=(SNEAKERS, TSHIRT)), klarna_id, recorder)

    assert keys(result.done) == ["capture:parcel-A", "refund:r-tshirt:kom:s:parcel-A"]
    assert keys(result.transient) == ["capture:parcel-B"]
    assert [(a.key, why) for a, why in result.waiting] == [
        ("refund:r-sneakers:kom:s:parcel-B", "it comes out of parcel 2, which was not captured")
    ]
    assert result.captures_pending
    assert recorder.final() == {"kom:s:parcel-A": "done", result.done[1].action.reference: "done"}  # type: ignore[union-attr]

    again = await sync(sandbox, replace(order, refunds=(SNEAKERS, TSHIRT)), klarna_id, recorder)
    assert keys(again.done) == ["capture:parcel-B", "refund:r-sneakers:kom:s:parcel-B"] and again.in_sync
    assert (
        len(sandbox.writes("/captures")) == 3 and len(sandbox.writes("/refunds")) == 2
    )  # the 503 and 2 each


async def test_a_split_refund_stops_at_a_refused_part_and_the_next_refund_goes_on(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    recorder = Recorder()
    await sync(sandbox, order, klarna_id, recorder)
    sandbox.state.faults.add(
        Fault.http_error(403, method="POST", path="/refunds$", error_code="REFUND_NOT_ALLOWED", after=1)
    )

    result = await sync(sandbox, replace(order, refunds=(SPANNING, JEANS)), klarna_id, recorder)

    assert keys(result.done) == ["refund:r-both:kom:s:parcel-A", "refund:r-jeans:kom:s:parcel-A"]
    assert keys(result.failed) == ["refund:r-both:kom:s:parcel-B"]
    refunds = [
        (o.request_id, o.status, o.amount)
        for o in recorder.outcomes
        if o.kind == "refund" and o.status != "started"
    ]
    assert refunds == [("r-both", "done", 3000), ("r-both", "failed", 10000), ("r-jeans", "done", 7000)]


async def test_a_part_that_must_wait_after_another_part_went_out_holds_back_every_later_refund(
    sandbox: Sandbox,
) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    recorder = Recorder()
    await sync(sandbox, order, klarna_id, recorder)
    sandbox.state.faults.add(Fault.http_error(503, method="POST", path="/refunds$", after=1))

    result = await sync(sandbox, replace(order, refunds=(SPANNING, JEANS)), klarna_id, recorder)

    assert keys(result.done) == ["refund:r-both:kom:s:parcel-A"] and keys(result.transient) == [
        "refund:r-both:kom:s:parcel-B"
    ]
    assert [(a.key, why) for a, why in result.waiting] == [
        ("refund:r-jeans:kom:s:parcel-A", "refund r-both may be partly sent and goes first")
    ]
    again = await sync(sandbox, replace(order, refunds=(SPANNING, JEANS)), klarna_id, recorder)
    assert keys(again.done) == ["refund:r-both:kom:s:parcel-B", "refund:r-jeans:kom:s:parcel-A"]
    ledger = await sandbox.ledger(klarna_id)
    refunds = ledger["refunds"]
    assert isinstance(refunds, list) and all(r["allocated"] for r in refunds)


async def test_a_refund_whose_answer_was_lost_holds_back_the_next_refund(sandbox: Sandbox) -> None:
    """A lost answer may mean the refund was made: it counts as possibly partly sent."""
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    recorder = Recorder()
    await sync(sandbox, order, klarna_id, recorder)
    sandbox.state.faults.add(Fault.lost_response(method="POST", path="/refunds$"))

    result = await sync(sandbox, replace(order, refunds=(SPANNING, JEANS)), klarna_id, recorder)

    assert keys(result.transient) == ["refund:r-both:kom:s:parcel-A"] and result.done == []
    assert [why for _, why in result.waiting] == ["refund r-both may be partly sent and goes first"] * 2
    again = await sync(sandbox, replace(order, refunds=(SPANNING, JEANS)), klarna_id, recorder)
    assert keys(again.done) == ["refund:r-both:kom:s:parcel-B", "refund:r-jeans:kom:s:parcel-A"]
    assert again.in_sync and len(sandbox.state.get(klarna_id).refunds) == 3


async def test_409_same_key_in_flight_is_transient(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    sandbox.state.faults.add(Fault.http_error(409, method="POST", path="/captures$", error_code="CONFLICT"))
    recorder = Recorder()

    result = await sync(sandbox, order, klarna_id, recorder)

    assert keys(result.transient) == ["capture:parcel-A"] and result.failed == []
    assert "failed" not in recorder.final().values()


async def test_an_action_refused_before_is_not_sent_again(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    refused = Outcome("kom:s:parcel-A", "capture", "failed", 10000, message="refused before")

    result = await sync_order(order, klarna_id, sandbox.provider(), refused={refused.key: refused})

    assert keys(result.failed) == ["capture:parcel-A"] and result.failed[0].reason == "refused before"
    assert keys(result.done) == ["capture:parcel-B"] and result.waiting == []  # B is not held back
    assert len(sandbox.writes("/captures")) == 1


async def test_a_parcel_captured_after_a_later_one_gets_references_of_its_own(sandbox: Sandbox) -> None:
    """Parcel A refused (then Retry now), parcel B captured meanwhile: A's lines must not reuse
    B's numbers, the same record gives the same references again, and each parcel's refund
    goes to its own invoice."""
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    refused = Outcome("kom:s:parcel-A", "capture", "failed", 10000, message="refused before")
    await sync_order(order, klarna_id, sandbox.provider(), refused={refused.key: refused})
    captured = sandbox.state.get(klarna_id).captures
    assert [c.reference for c in captured] == ["kom:s:parcel-B"]
    b_refs = {line.reference for line in captured[0].order_lines}
    assert b_refs and all(r.endswith("/2") for r in b_refs)

    # Planned twice from the same record (a crash before the write): the same references.
    state = await sandbox.provider().get_order(klarna_id)
    first, second = plan(order, state), plan(order, state)
    assert first.actions == second.actions
    (retry,) = first.actions
    assert isinstance(retry, CaptureAction) and {line.reference[-2:] for line in retry.lines} == {"/3"}

    result = await sync_order(order, klarna_id, sandbox.provider())  # the merchant pressed Retry now
    assert keys(result.done) == ["capture:parcel-A"]
    captures = {c.reference: c for c in sandbox.state.get(klarna_id).captures}
    a_refs = {line.reference for line in captures["kom:s:parcel-A"].order_lines}
    assert a_refs and all(r.endswith("/3") for r in a_refs) and not a_refs & b_refs

    both = await sync_order(replace(order, refunds=(TSHIRT, SNEAKERS)), klarna_id, sandbox.provider())
    assert both.in_sync and len(both.done) == 2
    ledger = await sandbox.ledger(klarna_id)  # the sandbox's allocation rule, not KOM's
    by_id = {c.reference: c.capture_id for c in sandbox.state.get(klarna_id).captures}
    refunds = ledger["refunds"]
    assert isinstance(refunds, list) and all(r["allocated"] for r in refunds)
    booked = {r["refunded_amount"]: r["capture_id"] for r in refunds}
    assert booked == {3000: by_id["kom:s:parcel-A"], 10000: by_id["kom:s:parcel-B"]}


async def test_tracking_is_added_to_an_existing_capture(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    await sync_order(replace(order, shipments=order.shipments[:1]), klarna_id, sandbox.provider())
    state = await sandbox.provider().get_order(klarna_id)
    capture_id = state.captures[0].capture_id
    action = ShippingInfoAction(
        key="shipping:parcel-A2",
        idempotency_key=idempotency_key(klarna_id, "shipping:parcel-A2"),
        shipment_id="parcel-A2",
        capture=capture_id,
        parcel=1,
        tracking=Tracking("UPS", "1Z-RESHIP"),
    )
    recorder = Recorder()

    result = await execute(Plan(actions=(action,)), state, sandbox.provider(), record=recorder)

    assert keys(result.done) == ["shipping:parcel-A2"] and result.in_sync
    numbers = [i["tracking_number"] for i in sandbox.state.get(klarna_id).captures[0].shipping_info]
    assert numbers == ["PN-1001-A", "1Z-RESHIP"]
    assert recorder.final() == {"shipping:parcel-A2": "done"}


def release(klarna_id: str, *, cancel: bool, amount: int) -> ReleaseAction:
    key = "release:order-cancelled"
    return ReleaseAction(key, idempotency_key(klarna_id, key), cancel=cancel, amount=amount)


async def test_release_frees_the_rest_and_cancel_the_whole_order(sandbox: Sandbox) -> None:
    order = seed_order()
    captured = await sandbox.new_order(order)
    await sync_order(replace(order, shipments=order.shipments[:1]), captured, sandbox.provider())
    state = await sandbox.provider().get_order(captured)
    recorder = Recorder()
    result = await execute(
        Plan(actions=(release(captured, cancel=False, amount=10000),)),
        state,
        sandbox.provider(),
        record=recorder,
    )
    assert result.in_sync and sandbox.state.get(captured).remaining_authorized_amount == 0
    assert [(o.kind, o.status, o.amount) for o in recorder.outcomes][-1] == ("release", "done", 10000)

    untouched = await sandbox.new_order(order)
    state = await sandbox.provider().get_order(untouched)
    result = await execute(
        Plan(actions=(release(untouched, cancel=True, amount=20000),)),
        state,
        sandbox.provider(),
        record=recorder,
    )
    assert result.in_sync and sandbox.state.get(untouched).status == "CANCELLED"
    assert [(o.kind, o.status) for o in recorder.outcomes][-1] == ("cancel", "done")


async def test_release_goes_last_and_waits_while_a_capture_may_still_happen(sandbox: Sandbox) -> None:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    state = await sandbox.provider().get_order(klarna_id)
    planned = plan(order, state)
    sandbox.state.faults.add(Fault.http_error(503, method="POST", path="/captures$", after=1))

    release_first = Plan(actions=(release(klarna_id, cancel=False, amount=0), *planned.actions))
    result = await execute(release_first, state, sandbox.provider(attempts=1), classify=classify)

    assert keys(result.done) == ["capture:parcel-A"] and keys(result.transient) == ["capture:parcel-B"]
    assert [(a.key, why) for a, why in result.waiting] == [
        ("release:order-cancelled", "a parcel may still be captured")
    ]
    assert sandbox.writes("/release-remaining-authorization") == []
