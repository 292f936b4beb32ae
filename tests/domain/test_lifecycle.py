"""The order lifecycle as Saleor reports it: returns, cancelled parcels, cancelled orders.

Expected values are worked out by hand from the order's prices (T-shirt 30.00, Jeans 70.00,
Sneakers 100.00), not taken from the planner.
"""

from __future__ import annotations

from dataclasses import replace

from plugin.domain.actions import (
    CaptureAction,
    Plan,
    RefundAction,
    RefusalCode,
    ReleaseAction,
    ShippingInfoAction,
)
from plugin.domain.lines import klarna_line_problems
from plugin.domain.plan import plan
from plugin.domain.policy import OriginPolicy, Policy, ShippingFeePolicy
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import GiftCardPayment, Order, Shipment, ShipmentLine, Shipping, Tracking
from tests.domain.builders import at, line, refund, shipment
from tests.domain.sim import allocation, apply_all, authorized

TWO_SHIRTS = Order(
    id="o-2",
    currency="EUR",
    lines=(line("l-tshirt", "TSHIRT", "T-shirt", 2, 3000), line("l-jeans", "JEANS", "Jeans", 1, 7000)),
)


def run(order: Order, provider: ProviderOrder, policy: Policy | None = None) -> tuple[Plan, ProviderOrder]:
    """Plan, check Klarna's line rules, apply, and check that re-planning yields nothing."""
    result = plan(order, provider, policy)
    for action in result.actions:
        if isinstance(action, CaptureAction | RefundAction):
            assert all(klarna_line_problems(x) == [] for x in action.lines)
    after = apply_all(provider, result.actions)
    assert plan(order, after, policy).actions == ()
    assert None not in allocation(after)
    return result, after


def refunds(result: Plan) -> list[tuple[int, int]]:
    return [(a.parcel, a.refunded_amount) for a in result.actions if isinstance(a, RefundAction)]


def shipped_one_plus_one() -> tuple[Order, ProviderOrder]:
    order = replace(
        TWO_SHIRTS,
        shipments=(
            shipment("f-1", 1, **{"l-tshirt": 1, "l-jeans": 1}),
            shipment("f-2", 2, **{"l-tshirt": 1}),
        ),
    )
    _, provider = run(order, authorized(order))
    assert [c.captured_amount for c in provider.captures] == [10000, 3000]
    return order, provider


def test_the_unit_returned_from_parcel_2_is_refunded_on_invoice_2() -> None:
    order, provider = shipped_one_plus_one()
    # Saleor: parcel 2 emptied and deleted, a RETURNED fulfillment holds the T-shirt.
    order = replace(
        order,
        shipments=order.shipments[:1],
        returned=(ShipmentLine("l-tshirt", 1),),
        refunds=(refund("r-1", 5, ("l-tshirt", 1)),),
    )
    result, provider = run(order, provider)
    assert refunds(result) == [(2, 3000)]
    assert "policy" not in result.actions[0].description and "first" not in result.actions[0].description


def test_the_unit_returned_from_parcel_1_is_refunded_on_invoice_1_whatever_the_policy() -> None:
    order, provider = shipped_one_plus_one()
    kept = Shipment("f-1", at(1), (ShipmentLine("l-jeans", 1),))
    order = replace(
        order,
        shipments=(kept, order.shipments[1]),
        returned=(ShipmentLine("l-tshirt", 1),),
        refunds=(refund("r-1", 5, ("l-tshirt", 1)),),
    )
    result, _ = run(order, provider, Policy(unknown_origin=OriginPolicy.LATEST_FIRST))
    assert refunds(result) == [(1, 3000)]


def test_a_genuine_tie_follows_the_policy_and_says_so() -> None:
    order, provider = shipped_one_plus_one()
    kept = Shipment("f-1", at(1), (ShipmentLine("l-jeans", 1),))
    order = replace(
        order,
        shipments=(kept,),
        returned=(ShipmentLine("l-tshirt", 2),),
        refunds=(refund("r-1", 5, ("l-tshirt", 1)),),
    )
    result, provider = run(order, provider, Policy(unknown_origin=OriginPolicy.LATEST_FIRST))
    assert refunds(result) == [(2, 3000)]
    (action,) = result.actions
    assert isinstance(action, RefundAction) and "came back from parcels 1 and 2" in action.description
    # The second T-shirt then goes to the parcel that still has one back.
    order = replace(order, refunds=(*order.refunds, refund("r-2", 6, ("l-tshirt", 1))))
    result, _ = run(order, provider, Policy(unknown_origin=OriginPolicy.LATEST_FIRST))
    assert refunds(result) == [(1, 3000)]


def test_units_returned_before_their_parcel_was_captured_are_never_taken_from_kept_goods() -> None:
    order = replace(TWO_SHIRTS, shipments=(shipment("f-1", 1, **{"l-tshirt": 1, "l-jeans": 1}),))
    _, provider = run(order, authorized(order))
    # Parcel 2 shipped while Klarna was down and came back before KOM captured it.
    order = replace(
        order,
        returned=(ShipmentLine("l-tshirt", 1),),
        refunds=(refund("r-1", 5, ("l-tshirt", 1)),),
    )
    result, after = run(order, provider)
    assert result.actions == ()
    (refusal,) = result.refusals
    assert refusal.code is RefusalCode.NEVER_CHARGED and "never charged" in refusal.message
    assert after.refunds == () and len(after.captures) == 1


def test_a_parcel_cancelled_after_its_capture_and_sent_again_is_not_captured_twice() -> None:
    order = replace(TWO_SHIRTS, shipments=(shipment("f-1", 1, **{"l-tshirt": 2, "l-jeans": 1}),))
    _, provider = run(order, authorized(order))
    resent = replace(shipment("f-2", 3, **{"l-tshirt": 2, "l-jeans": 1}), tracking=Tracking(number="DHL-9"))
    order = replace(order, shipments=(resent,), cancelled_shipments=order.shipments)
    result, provider = run(order, provider)
    (info,) = result.actions
    assert isinstance(info, ShippingInfoAction) and info.capture == provider.captures[0].capture_id
    assert provider.captures[0].tracking_numbers == ("DHL-9",) and len(provider.captures) == 1
    # The re-sent T-shirt comes back: refunded from the first capture with its references.
    kept = Shipment("f-2", at(3), (ShipmentLine("l-tshirt", 1), ShipmentLine("l-jeans", 1)))
    order = replace(
        order,
        shipments=(kept,),
        returned=(ShipmentLine("l-tshirt", 1),),
        refunds=(refund("r-1", 5, ("l-tshirt", 1)),),
    )
    result, provider = run(order, provider)
    assert refunds(result) == [(1, 3000)]
    assert provider.captured_amount - provider.refunded_amount == 3000 + 7000


def test_a_partly_resent_parcel_captures_only_what_was_not_paid_for() -> None:
    order = replace(TWO_SHIRTS, shipments=(shipment("f-1", 1, **{"l-tshirt": 1}),))
    _, provider = run(order, authorized(order))
    order = replace(
        order,
        shipments=(shipment("f-2", 3, **{"l-tshirt": 2, "l-jeans": 1}),),
        cancelled_shipments=order.shipments,
    )
    result, provider = run(order, provider)
    (capture,) = (a for a in result.actions if isinstance(a, CaptureAction))
    assert capture.captured_amount == 3000 + 7000
    assert provider.captured_amount == 13000 == sum(x.total_amount for x in TWO_SHIRTS.lines)


def test_cancelled_order_refunds_goods_that_never_left_and_releases_the_rest() -> None:
    order = replace(
        TWO_SHIRTS,
        shipping=Shipping("Home delivery", 500, 2500, 100),
        shipments=(shipment("f-1", 1, **{"l-tshirt": 1, "l-jeans": 1}),),
    )
    _, provider = run(order, authorized(order))
    assert provider.captured_amount == 10500 and provider.remaining_authorized_amount == 3000
    order = replace(order, shipments=(), cancelled_shipments=order.shipments, cancelled=True)
    result, provider = run(order, provider)
    (refund_action,) = (a for a in result.actions if isinstance(a, RefundAction))
    assert refund_action.automatic and refund_action.parcel == 1 and refund_action.refunded_amount == 10500
    assert {x.reference for x in refund_action.lines} <= {x.reference for x in provider.captures[0].lines}
    (release,) = (a for a in result.actions if isinstance(a, ReleaseAction))
    assert not release.cancel and release.amount == 3000
    assert (
        provider.captured_amount - provider.refunded_amount == 0 and provider.remaining_authorized_amount == 0
    )


def test_cancelled_order_before_any_capture_cancels_the_provider_order() -> None:
    order = replace(TWO_SHIRTS, cancelled=True)
    result, provider = run(order, authorized(order))
    (release,) = result.actions
    assert isinstance(release, ReleaseAction) and release.cancel and release.amount == 13000
    assert provider.status == "CANCELLED"


def test_a_free_gift_shipped_alone_never_blocks_a_return() -> None:
    order = Order(
        id="o-3",
        currency="EUR",
        lines=(line("l-tshirt", "TSHIRT", "T-shirt", 1, 3000), line("l-gift", "GIFT", "Tote bag", 1, 0)),
        shipments=(shipment("f-1", 1, **{"l-tshirt": 1}), shipment("f-2", 2, **{"l-gift": 1})),
    )
    _, provider = run(order, authorized(order))
    assert len(provider.captures) == 1  # a parcel worth nothing is not captured
    order = replace(
        order,
        shipments=(),
        returned=(ShipmentLine("l-tshirt", 1), ShipmentLine("l-gift", 1)),
        refunds=(refund("r-1", 5, ("l-tshirt", 1), ("l-gift", 1)),),
    )
    result, _ = run(order, provider)
    assert refunds(result) == [(1, 3000)] and result.refusals == ()


def test_a_return_of_only_free_goods_is_settled_without_a_provider_refund() -> None:
    order = Order(
        id="o-4",
        currency="EUR",
        lines=(line("l-tshirt", "TSHIRT", "T-shirt", 1, 3000), line("l-gift", "GIFT", "Tote bag", 1, 0)),
        shipments=(shipment("f-1", 1, **{"l-tshirt": 1, "l-gift": 1}),),
    )
    _, provider = run(order, authorized(order))
    order = replace(
        order,
        shipments=(Shipment("f-1", at(1), (ShipmentLine("l-tshirt", 1),)),),
        returned=(ShipmentLine("l-gift", 1),),
        refunds=(refund("r-1", 5, ("l-gift", 1)),),
    )
    result, _ = run(order, provider)
    assert result.actions == () and result.refusals == () and result.settled == ("r-1",)


def test_shipping_refund_before_shipping_was_captured_is_refused_not_taken_elsewhere() -> None:
    order = replace(
        TWO_SHIRTS,
        shipping=Shipping("Home delivery", 500, 2500, 100),
        shipments=(shipment("f-1", 1, **{"l-tshirt": 1, "l-jeans": 1}),),
    )
    policy = Policy(shipping_fee=ShippingFeePolicy.LAST_PARCEL)
    _, provider = run(order, authorized(order), policy)
    assert provider.captured_amount == 10000
    order = replace(
        order,
        shipments=(Shipment("f-1", at(1), (ShipmentLine("l-jeans", 1),)),),
        returned=(ShipmentLine("l-tshirt", 1),),
        refunds=(refund("r-1", 5, ("l-tshirt", 1), shipping=True),),
    )
    result, _ = run(order, provider, policy)
    assert result.actions == ()
    (refusal,) = result.refusals
    assert refusal.code is RefusalCode.SHIPPING_NOT_CAPTURED and "not been charged yet" in refusal.message


def test_a_grant_capped_by_the_platform_refunds_the_granted_goods_within_the_request() -> None:
    order, provider = shipped_one_plus_one()
    order = replace(order, shipments=order.shipments[:1], returned=(ShipmentLine("l-tshirt", 1),))
    # Saleor capped the grant at 0.00 (made before the charge was reported), then asks for all 130.00.
    capped = replace(refund("r-1", 5, ("l-tshirt", 1)), amount=0, requested_amount=13000)
    result, _ = run(replace(order, refunds=(capped,)), provider)
    assert refunds(result) == [(2, 3000)]
    # A request for less than the goods' value says what happened instead of "worth nothing".
    short = replace(refund("r-2", 5, ("l-tshirt", 1)), amount=0, requested_amount=1000)
    result = plan(replace(order, refunds=(short,)), provider)
    (refusal,) = result.refusals
    assert refusal.code is RefusalCode.GRANT_CAPPED and "capped this grant" in refusal.message


def test_restocking_fee_then_the_rest_by_amount() -> None:
    order, provider = shipped_one_plus_one()
    order = replace(order, shipments=order.shipments[:1], returned=(ShipmentLine("l-tshirt", 1),))
    fee = refund("r-1", 5, ("l-tshirt", 1), amount=2500)  # 5.00 restocking fee kept
    result, provider = run(replace(order, refunds=(fee,)), provider)
    assert refunds(result) == [(2, 2500)]
    # The 5.00 stays refundable later, as an amount, on an invoice with a unit to spare.
    later = refund("r-2", 6, amount=500)
    result, provider = run(replace(order, refunds=(fee, later)), provider)
    assert refunds(result) == [(2, 500)]  # on the invoice the T-shirt came from


def test_goodwill_stacks_no_more_units_than_captured_and_never_blocks_a_return() -> None:
    order, provider = shipped_one_plus_one()
    goodwill = refund("r-1", 5, amount=2000)
    result, provider = run(replace(order, refunds=(goodwill,)), provider)
    (action,) = (a for a in result.actions if isinstance(a, RefundAction))
    assert [x.name for x in action.lines] == ["Goodwill: Jeans"]  # the roomiest line, one unit
    order = replace(
        order,
        shipments=(Shipment("f-1", at(1), (ShipmentLine("l-jeans", 1),)),),
        returned=(ShipmentLine("l-tshirt", 2),),
        refunds=(goodwill, refund("r-2", 6, ("l-tshirt", 2))),
    )
    result, provider = run(order, provider)
    assert sorted(refunds(result)) == [(1, 3000), (2, 3000)]
    for capture in provider.captures:
        for captured in capture.lines:
            mine = [x for r in provider.refunds for x in r.lines if x.reference == captured.reference]
            assert sum(x.quantity for x in mine) <= captured.quantity
            assert sum(x.total_amount for x in mine) <= captured.total_amount
    # The shopper then returns the very unit the goodwill line was put on: refunded all the
    # same (what is left of it, on its own invoice) rather than blocked.
    order = replace(
        order,
        shipments=(),
        returned=(ShipmentLine("l-tshirt", 2), ShipmentLine("l-jeans", 1)),
        refunds=(*order.refunds, refund("r-3", 7, ("l-jeans", 1))),
    )
    result, provider = run(order, provider)
    assert refunds(result) == [(1, 5000)]
    assert provider.captured_amount - provider.refunded_amount == 0


def test_gift_card_order_is_captured_in_full_and_no_parcel_is_worth_nothing() -> None:
    order = replace(
        TWO_SHIRTS,
        shipping=Shipping("Home delivery", 500, 2500, 100),
        gift_cards=(GiftCardPayment("g-1", 10400),),
        shipments=(
            shipment("f-1", 1, **{"l-tshirt": 1}),
            shipment("f-2", 2, **{"l-tshirt": 1}),
            shipment("f-3", 3, **{"l-jeans": 1}),
        ),
    )
    authorization = authorized(order)
    assert authorization.order_amount == 13500 - 10400
    _, provider = run(order, authorization)
    assert len(provider.captures) == 3 and all(c.captured_amount >= 1 for c in provider.captures)
    assert (
        provider.captured_amount == authorization.order_amount and provider.remaining_authorized_amount == 0
    )
