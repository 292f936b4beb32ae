"""Reports made from the recorded outcomes (plugin/service/reporting.py): what each outcome
tells the platform, and what KOM finds on the provider's record after a crash."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from plugin.demo import seed_order
from plugin.domain.actions import Plan, RefundAction, ReleaseAction, idempotency_key
from plugin.domain.plan import plan
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import RefundLine, RefundRequest
from plugin.service.records import Outcome, StoredRequest
from plugin.service.reporting import adopt, compose, lasting_attention
from plugin.service.requests import refund_to_json
from plugin.service.sync import SyncResult, execute, sync_order
from tests.domain.builders import at
from tests.service.conftest import Sandbox
from tests.service.test_executor import Recorder

SPANNING = RefundRequest(
    "r-both", at(102), (RefundLine("line-tshirt", 1), RefundLine("line-sneakers", 1)), amount=13000
)


def stored(request: RefundRequest) -> StoredRequest:
    return StoredRequest(
        1,
        "refund",
        request.id,
        f"kom-refund:{request.id}",
        "txn-1",
        refund_to_json(request),
        datetime.now(UTC),
        False,
    )


async def captured(sandbox: Sandbox, parcels: int = 2) -> str:
    order = seed_order()
    klarna_id = await sandbox.new_order(order)
    await sync_order(replace(order, shipments=order.shipments[:parcels]), klarna_id, sandbox.provider())
    return klarna_id


async def test_an_automatic_refund_and_a_release_are_reported_on_the_payment(sandbox: Sandbox) -> None:
    klarna_id = await captured(sandbox, parcels=1)
    provider = sandbox.provider()
    state = await provider.get_order(klarna_id)
    tshirt = RefundRequest("r-tshirt", at(101), (RefundLine("line-tshirt", 1),))
    order = replace(seed_order(), shipments=seed_order().shipments[:1], refunds=(tshirt,))
    (refund,) = plan(order, state).actions
    assert isinstance(refund, RefundAction)
    automatic = replace(refund, automatic=True, request_id="never-ships")
    recorder = Recorder()
    result = await execute(Plan(actions=(automatic,)), state, provider, record=recorder)
    assert result.in_sync

    composed = compose(recorder.outcomes, [], result, await provider.get_order(klarna_id), "txn-1", None)
    reports = [(q.transaction_id, q.report.type, q.report.amount) for q in composed.reports]
    (refund_id,) = [r.refund_id for r in sandbox.state.get(klarna_id).refunds]
    assert ("txn-1", "REFUND_SUCCESS", 3000) in reports
    assert (
        next(q.report for q in composed.reports if q.report.type == "REFUND_SUCCESS").psp_reference
        == refund_id
    )

    key = "release:order-cancelled"
    release = ReleaseAction(key, idempotency_key(klarna_id, key), cancel=False, amount=10000)
    result = await execute(Plan(actions=(release,)), state, provider, record=recorder)
    composed = compose(recorder.outcomes[-2:], [], result, state, "txn-1", None)
    (report,) = [q.report for q in composed.reports]
    assert (report.type, report.psp_reference, report.amount) == ("CANCEL_SUCCESS", key, 10000)


async def test_a_refund_found_on_the_provider_without_a_record_is_adopted(sandbox: Sandbox) -> None:
    """Killed between the provider's 201 and the record: the next pass finds the refund."""
    klarna_id = await captured(sandbox)
    provider = sandbox.provider()
    await sync_order(replace(seed_order(), refunds=(SPANNING,)), klarna_id, provider)  # nothing recorded
    state = await provider.get_order(klarna_id)

    adopted = adopt(state, [], ["r-both", "r-other"])
    assert [(o.kind, o.request_id, o.amount) for o in adopted if o.kind == "refund"] == [
        ("refund", "r-both", 3000),
        ("refund", "r-both", 10000),
    ]
    composed = compose(adopted, [stored(SPANNING)], SyncResult(), state, "txn-1", None)
    answers = [q.report for q in composed.reports if q.report.psp_reference == "kom-refund:r-both"]
    assert [(r.type, r.amount) for r in answers] == [("REFUND_SUCCESS", 13000)]
    assert answers[0].message.startswith("Refunded €130.00, split over 2 invoices: Klarna invoice ")

    # A refund of KOM's that neither a request nor a record explains is kept, never reported.
    strays = adopt(state, [], [])
    assert {o.request_id for o in strays if o.kind == "refund"} == {None}
    composed = compose(strays, [], SyncResult(), state, "txn-1", None)
    assert [q.report.type for q in composed.reports] == ["CHARGE_SUCCESS", "CHARGE_SUCCESS"]


def test_a_partly_sent_refund_is_a_success_for_what_moved_and_stays_on_the_list() -> None:
    done = Outcome("kom:r:r-both:AAA/2", "refund", "done", 3000, "ref-1", request_id="r-both", parcel=1)
    failed = Outcome(
        "kom:r:r-both:BBB/2", "refund", "failed", 10000, request_id="r-both", parcel=2, message="403 no"
    )
    provider = ProviderOrder("k-1", "PART_CAPTURED", "EUR", 20000, 20000, 3000, 0)
    composed = compose([done, failed], [stored(SPANNING)], SyncResult(), provider, "txn-1", None)
    (report,) = [q.report for q in composed.reports]
    assert (report.type, report.amount) == ("REFUND_SUCCESS", 3000)
    assert "the rest was not refunded: 403 no" in report.message
    (attention,) = lasting_attention([done, failed], provider)
    assert "only partly sent" in attention and "€100.00 was not refunded" in attention


def test_available_actions_follow_the_provider_order() -> None:
    from plugin.domain.provider import ProviderOrder
    from plugin.service.reporting import available_actions

    def order(status: str, captured: int, refunded: int, left: int) -> ProviderOrder:
        return ProviderOrder("k", status, "EUR", 21000, captured, refunded, left)

    assert available_actions(order("AUTHORIZED", 0, 0, 21000), manual_capture=True) == ("CHARGE", "CANCEL")
    assert available_actions(order("AUTHORIZED", 0, 0, 21000), manual_capture=False) == ("CANCEL",)
    assert available_actions(order("PART_CAPTURED", 11000, 0, 10000), manual_capture=True) == (
        "CHARGE",
        "REFUND",
        "CANCEL",
    )
    assert available_actions(order("CAPTURED", 21000, 3000, 0), manual_capture=True) == ("REFUND",)
    assert available_actions(order("CAPTURED", 21000, 21000, 0), manual_capture=True) == ()
    assert available_actions(order("CANCELLED", 0, 0, 21000), manual_capture=True) == ()
    assert available_actions(order("EXPIRED", 0, 0, 21000), manual_capture=True) == ()
