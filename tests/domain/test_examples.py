"""Worked examples: the seed article's order and the cases around it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plugin.domain.actions import CaptureAction, Plan, RefundAction, RefusalCode
from plugin.domain.lines import klarna_line_problems
from plugin.domain.plan import plan
from plugin.domain.policy import OriginPolicy, Policy, ShippingFeePolicy
from plugin.domain.provider import ProviderLine, ProviderOrder, ProviderRefund
from plugin.domain.snapshot import GiftCardPayment, Order, OrderDiscount, Shipping
from tests.domain.builders import line, refund, shipment
from tests.domain.sim import allocation, apply_all, authorized

SEED = Order(
    id="o-1",
    number="1001",
    currency="EUR",
    lines=(
        line("l-tshirt", "TSHIRT", "T-shirt", 1, 3000),
        line("l-jeans", "JEANS", "Jeans", 1, 7000),
        line("l-sneakers", "SNEAKERS", "Sneakers", 1, 10000),
    ),
    shipments=(shipment("f-A", 1, **{"l-tshirt": 1, "l-jeans": 1}), shipment("f-B", 2, **{"l-sneakers": 1})),
)


def run(
    order: Order, provider: ProviderOrder | None = None, policy: Policy | None = None
) -> tuple[Plan, ProviderOrder]:
    """Plan, check every line, apply, and check that re-planning yields nothing."""
    provider = provider or authorized(order)
    result = plan(order, provider, policy)
    for action in result.actions:
        for planned in action.lines:
            assert klarna_line_problems(planned) == [], (planned, klarna_line_problems(planned))
        amount = action.captured_amount if isinstance(action, CaptureAction) else action.refunded_amount
        assert sum(planned.total_amount for planned in action.lines) == amount
    provider = apply_all(provider, result.actions)
    assert plan(order, provider, policy).actions == ()
    assert None not in allocation(provider)
    return result, provider


def refunds_of(result: Plan) -> list[RefundAction]:
    return [a for a in result.actions if isinstance(a, RefundAction)]


def test_seed_order_becomes_two_captures_with_stable_references() -> None:
    result, _provider = run(SEED)
    a, b = result.actions
    assert isinstance(a, CaptureAction) and isinstance(b, CaptureAction)
    assert [(x.reference, x.quantity, x.total_amount) for x in a.lines] == [
        ("TSHIRT/1", 1, 3000),
        ("JEANS/1", 1, 7000),
    ]
    assert [(x.reference, x.total_amount) for x in b.lines] == [("SNEAKERS/2", 10000)]
    assert (a.captured_amount, b.captured_amount) == (10000, 10000)
    assert a.reference == "kom:s:f-A" and a.idempotency_key != b.idempotency_key
    # Same input, same plan, forever.
    assert plan(SEED, authorized(SEED)) == result


def test_seed_sneakers_refund_goes_to_capture_b() -> None:
    _, provider = run(SEED)
    order = replace(SEED, refunds=(refund("r-1", 10, ("l-sneakers", 1)),))
    result, provider = run(order, provider)
    (only,) = refunds_of(result)
    assert only.parcel == 2 and only.refunded_amount == 10000
    assert [(x.reference, x.quantity, x.total_amount) for x in only.lines] == [("SNEAKERS/2", 1, 10000)]
    assert allocation(provider)[-1] == provider.captures[1].capture_id


def test_return_spanning_both_parcels_becomes_two_refunds() -> None:
    _, provider = run(SEED)
    order = replace(SEED, refunds=(refund("r-1", 10, ("l-tshirt", 1), ("l-sneakers", 1)),))
    result, provider = run(order, provider)
    first, second = refunds_of(result)
    assert (first.parcel, first.refunded_amount, first.lines[0].reference) == (1, 3000, "TSHIRT/1")
    assert (second.parcel, second.refunded_amount, second.lines[0].reference) == (2, 10000, "SNEAKERS/2")
    assert allocation(provider)[-2:] == [provider.captures[0].capture_id, provider.captures[1].capture_id]


def test_one_sku_shipped_two_plus_one_and_returned_one_plus_one() -> None:
    order = Order(
        id="o-2",
        currency="EUR",
        lines=(line("l-1", "MUG", "Mug", 3, 1500),),
        shipments=(shipment("f-1", 1, **{"l-1": 2}), shipment("f-2", 2, **{"l-1": 1})),
    )
    result, provider = run(order)
    assert [x.reference for a in result.actions for x in a.lines] == ["MUG/1", "MUG/2"]
    order = replace(order, refunds=(refund("r-1", 5, ("l-1", 1, "f-1"), ("l-1", 1, "f-2")),))
    result, provider = run(order, provider)
    assert [(r.parcel, r.lines[0].reference, r.refunded_amount) for r in refunds_of(result)] == [
        (1, "MUG/1", 1500),
        (2, "MUG/2", 1500),
    ]
    # The last mug of parcel 1 can still be returned; a fourth cannot.
    order = replace(order, refunds=(*order.refunds, refund("r-2", 6, ("l-1", 2))))
    refused = plan(order, provider).refusals
    assert [r.code for r in refused] == [RefusalCode.NOT_CAPTURED]


def test_three_units_for_1000_split_exactly_and_refund_what_was_captured() -> None:
    order = Order(
        id="o-3",
        currency="EUR",
        lines=(line("l-1", "PEN", "Pen", 3, 334, total=1000),),
        shipments=tuple(shipment(f"f-{i}", i, **{"l-1": 1}) for i in range(3)),
    )
    result, provider = run(order)
    amounts = [a.lines[0].total_amount for a in result.actions]
    assert sum(amounts) == 1000 and sorted(amounts) == [333, 333, 334]
    assert (
        sum(a.lines[0].total_tax_amount for a in result.actions)
        == line("x", None, "x", 3, 334, total=1000).total_tax_amount
    )
    order = replace(order, refunds=tuple(refund(f"r-{i}", 10 + i, ("l-1", 1, f"f-{i}")) for i in range(3)))
    result, provider = run(order, provider)
    assert [r.refunded_amount for r in refunds_of(result)] == amounts


@pytest.mark.parametrize("rates", [(2500, 1200, 600)])
def test_mixed_tax_rates_stay_within_klarna_tolerance(rates: tuple[int, int, int]) -> None:
    order = Order(
        id="o-4",
        currency="SEK",
        lines=tuple(line(f"l-{r}", f"SKU{r}", f"Item {r}", 7, 1999, total=13990, tax_rate=r) for r in rates),
        shipments=(
            shipment("f-1", 1, **{f"l-{r}": 3 for r in rates}),
            shipment("f-2", 2, **{f"l-{r}": 4 for r in rates}),
        ),
    )
    result, _ = run(order)
    for r in rates:
        parts = [x for a in result.actions for x in a.lines if x.tax_rate == r]
        assert sum(x.total_amount for x in parts) == 13990
        assert sum(x.total_tax_amount for x in parts) == order.line(f"l-{r}").total_tax_amount  # type: ignore[union-attr]


def test_jpy_has_no_minor_units() -> None:
    order = Order(
        id="o-5",
        currency="JPY",
        lines=(line("l-1", "TEA", "Tea", 3, 1000, total=2999, tax_rate=800),),
        shipments=(shipment("f-1", 1, **{"l-1": 1}), shipment("f-2", 2, **{"l-1": 2})),
    )
    result, provider = run(order)
    assert [a.captured_amount for a in result.actions] == [1000, 1999]
    order = replace(order, refunds=(refund("r-1", 5, ("l-1", 3)),))
    result, _ = run(order, provider)
    assert [r.refunded_amount for r in refunds_of(result)] == [1000, 1999]


def test_order_discount_is_carried_by_the_lines() -> None:
    order = Order(
        id="o-6",
        currency="EUR",
        lines=(line("l-1", "A", "A", 1, 6000), line("l-2", "B", "B", 2, 2000)),
        discounts=(OrderDiscount("d-1", "Voucher", 1000),),
        shipments=(shipment("f-1", 1, **{"l-1": 1}), shipment("f-2", 2, **{"l-2": 2})),
    )
    result, provider = run(order)
    assert [a.captured_amount for a in result.actions] == [5400, 3600]
    assert result.actions[0].lines[0].total_discount_amount == 600
    order = replace(order, refunds=(refund("r-1", 5, ("l-2", 1)),))
    result, _ = run(order, provider)
    assert [r.refunded_amount for r in refunds_of(result)] == [1800]


@pytest.mark.parametrize(
    ("fee_policy", "parcel"), [(ShippingFeePolicy.FIRST_PARCEL, 0), (ShippingFeePolicy.LAST_PARCEL, 1)]
)
def test_shipping_captured_once_and_refunded_from_its_capture(
    fee_policy: ShippingFeePolicy, parcel: int
) -> None:
    order = replace(SEED, shipping=Shipping("Home delivery", 495, 2500, 99))
    policy = Policy(shipping_fee=fee_policy)
    result, provider = run(order, policy=policy)
    holders = [i for i, a in enumerate(result.actions) for x in a.lines if x.type == "shipping_fee"]
    assert holders == [parcel]
    order = replace(order, refunds=(refund("r-1", 5, ("l-tshirt", 1), shipping=True),))
    result, _ = run(order, provider, policy)
    assert sum(r.refunded_amount for r in refunds_of(result)) == 3495
    assert len(refunds_of(result)) == (1 if parcel == 0 else 2)


def test_goodwill_refund_goes_to_the_roomiest_capture_with_lines() -> None:
    _, provider = run(SEED)
    order = replace(SEED, refunds=(refund("r-1", 5, amount=2500),))
    result, provider = run(order, provider)
    (gw,) = refunds_of(result)
    assert gw.parcel == 1  # both have 10000 left; ties go to the earlier parcel
    assert all(x.goodwill and x.name.startswith("Goodwill: ") for x in gw.lines)
    assert sum(x.total_amount for x in gw.lines) == 2500
    # A larger one that fits in no single capture is split over two.
    order = replace(order, refunds=(*order.refunds, refund("r-2", 6, amount=12000)))
    result, _ = run(order, provider)
    assert sorted((r.parcel, r.refunded_amount) for r in refunds_of(result)) == [(1, 2000), (2, 10000)]


def test_partial_amount_reduces_lines_and_extra_amount_adds_goodwill() -> None:
    _, provider = run(SEED)
    order = replace(SEED, refunds=(refund("r-1", 5, ("l-jeans", 1), amount=6000),))
    result, provider = run(order, provider)
    (r,) = refunds_of(result)
    assert (r.refunded_amount, r.lines[0].total_discount_amount) == (6000, 1000)
    order = replace(order, refunds=(*order.refunds, refund("r-2", 6, ("l-sneakers", 1), amount=10500)))
    result, _ = run(order, provider)
    assert sorted((x.parcel, x.refunded_amount) for x in refunds_of(result)) == [(1, 500), (2, 10000)]


def test_over_refund_is_refused_and_nothing_is_sent() -> None:
    _, provider = run(SEED)
    order = replace(SEED, refunds=(refund("r-1", 5, ("l-sneakers", 1), amount=20001),))
    result = plan(order, provider)
    assert result.actions == ()
    assert [r.code for r in result.refusals] == [RefusalCode.OVER_REFUND]


def test_goods_never_captured_are_refused() -> None:
    order = replace(SEED, shipments=SEED.shipments[:1], refunds=(refund("r-1", 5, ("l-sneakers", 1)),))
    result = plan(order, authorized(order))
    assert [type(a).__name__ for a in result.actions] == ["CaptureAction"]
    assert [r.code for r in result.refusals] == [RefusalCode.NOT_CAPTURED]


def test_a_misallocated_refund_made_elsewhere_stops_all_later_refunds() -> None:
    _, provider = run(SEED)
    foreign = ProviderRefund("x-1", 1000, (ProviderLine("whatever", "Refund", "physical", 1, 1000, 1000),))
    provider = replace(provider, refunds=(foreign,), refunded_amount=1000)
    order = replace(SEED, refunds=(refund("r-1", 5, ("l-sneakers", 1)),))
    result = plan(order, provider)
    assert result.actions == ()
    assert [r.code for r in result.refusals] == [RefusalCode.EARLIER_REFUND_MISALLOCATED]


def test_origin_policy_latest_first() -> None:
    order = Order(
        id="o-7",
        currency="EUR",
        lines=(line("l-1", "MUG", "Mug", 2, 1500),),
        shipments=(shipment("f-1", 1, **{"l-1": 1}), shipment("f-2", 2, **{"l-1": 1})),
        refunds=(refund("r-1", 5, ("l-1", 1)),),
    )
    latest = Policy(unknown_origin=OriginPolicy.LATEST_FIRST)
    result, _ = run(order, policy=latest)
    assert [r.parcel for r in refunds_of(result)] == [2]
    result, _ = run(order)
    assert [r.parcel for r in refunds_of(result)] == [1]


def test_partly_sent_refund_is_finished_not_repeated() -> None:
    _, provider = run(SEED)
    order = replace(SEED, refunds=(refund("r-1", 10, ("l-tshirt", 1), ("l-sneakers", 1)),))
    first, second = plan(order, provider).actions
    provider = apply_all(provider, (first,))  # the worker crashed after the first refund
    remaining = plan(order, provider).actions
    assert remaining == (second,)


def test_gift_card_share_rides_on_each_capture() -> None:
    order = replace(SEED, gift_cards=(GiftCardPayment("g-1", 5000, code="SECRET-CODE"),))
    result, _provider = run(order)
    assert sum(a.captured_amount for a in result.actions) == 15000 == authorized(order).order_amount
    assert all("SECRET" not in x.reference for a in result.actions for x in a.lines)


def test_shipment_of_more_than_ordered_is_refused() -> None:
    order = replace(SEED, shipments=(shipment("f-A", 1, **{"l-tshirt": 2}),))
    result = plan(order, authorized(order))
    assert result.actions == () and [r.code for r in result.refusals] == [RefusalCode.OVER_SHIPPED]


def test_vanished_shipment_is_not_captured_again() -> None:
    _, provider = run(SEED)
    order = replace(SEED, shipments=SEED.shipments[1:])  # Saleor drops a returned fulfillment
    assert plan(order, provider).actions == ()


def test_duplicate_skus_get_distinct_references() -> None:
    order = Order(
        id="o-8",
        currency="EUR",
        lines=(line("l-1", "GIFT", "Gift A", 1, 100), line("l-2", "GIFT", "Gift B", 1, 200)),
        shipments=(shipment("f-1", 1, **{"l-1": 1, "l-2": 1}),),
    )
    result, _ = run(order)
    refs = [x.reference for x in result.actions[0].lines]
    assert len(set(refs)) == 2 and all(r.startswith("GIFT~") and len(r) <= 64 for r in refs)
