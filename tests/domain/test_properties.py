"""Property-based tests: random orders, random parcels, random returns and goodwill refunds.

After every platform event the planner runs against a simulated provider; the test checks
Klarna's line arithmetic, the three allocation conditions (with an independent checker),
exact sums, per-reference limits, and that re-planning after applying yields no actions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.domain.actions import CaptureAction, Plan, RefundAction, RefusalCode
from plugin.domain.lines import klarna_line_problems
from plugin.domain.plan import plan
from plugin.domain.policy import OriginPolicy, Policy, ShippingFeePolicy
from plugin.domain.provider import ProviderOrder
from plugin.domain.references import parse_line_reference
from plugin.domain.rounding import tax_of_gross, tax_within_tolerance
from plugin.domain.snapshot import (
    GiftCardPayment,
    Order,
    OrderDiscount,
    OrderLine,
    RefundLine,
    RefundRequest,
    Shipment,
    ShipmentLine,
    Shipping,
)
from tests.domain.builders import at
from tests.domain.sim import allocation, apply_all, authorized, reference_usage

RATES = [0, 600, 770, 1200, 1900, 2500]


@st.composite
def order_lines(draw: st.DrawFn) -> tuple[OrderLine, ...]:
    lines = []
    for i in range(draw(st.integers(1, 5))):
        quantity = draw(st.integers(1, 6))
        unit = draw(st.integers(1, 40_000))
        discount = draw(st.one_of(st.just(0), st.integers(0, quantity * unit)))
        total = quantity * unit - discount
        rate = draw(st.sampled_from(RATES))
        tax = tax_of_gross(total, rate) + draw(st.sampled_from([0, 0, 1, -1]))
        if not tax_within_tolerance(total, tax, rate):
            tax = tax_of_gross(total, rate)
        sku = draw(st.sampled_from(["TSHIRT", "JEANS", "SNEAKERS-42", None, "TSHIRT"]))
        lines.append(OrderLine(f"line-{i}", f"Item {i}", quantity, unit, total, rate, tax, sku=sku))
    return tuple(lines)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Order, list[tuple[str, object]], Policy]:
    lines = draw(order_lines())
    goods = sum(line.total_amount for line in lines)
    shipping = draw(
        st.none()
        | st.builds(
            lambda a, r: Shipping("Shipping", a, r, tax_of_gross(a, r)),
            st.integers(0, 2000),
            st.sampled_from(RATES),
        )
    )
    discount = draw(st.integers(0, goods // 3)) if goods else 0
    gift = draw(st.integers(0, (goods - discount) // 3)) if draw(st.booleans()) else 0
    order = Order(
        id="o",
        currency=draw(st.sampled_from(["EUR", "JPY", "SEK"])),
        lines=lines,
        shipping=shipping,
        discounts=(OrderDiscount("d", "Voucher", discount),) if discount else (),
        gift_cards=(GiftCardPayment("g", gift),) if gift else (),
    )
    # Parcels: each draws some of the units still unshipped.
    left = {line.id: line.quantity for line in lines}
    shipments = []
    for s in range(draw(st.integers(1, 4))):
        parcel = {lid: draw(st.integers(0, q)) for lid, q in left.items() if q}
        parcel = {lid: q for lid, q in parcel.items() if q}
        if not parcel:
            continue
        for lid, q in parcel.items():
            left[lid] -= q
        shipments.append(Shipment(f"ship-{s}", at(s), tuple(ShipmentLine(k, v) for k, v in parcel.items())))
    if draw(st.booleans()):  # sometimes ship the rest
        rest = {lid: q for lid, q in left.items() if q}
        if rest:
            shipments.append(Shipment("ship-last", at(9), tuple(ShipmentLine(k, v) for k, v in rest.items())))
    events: list[tuple[str, object]] = [("ship", s) for s in shipments]
    for r in range(draw(st.integers(0, 5))):
        events.insert(draw(st.integers(0, len(events))), ("refund", draw(refund_shapes(r, lines))))
    policy = Policy(
        shipping_fee=draw(st.sampled_from(list(ShippingFeePolicy))),
        unknown_origin=draw(st.sampled_from(list(OriginPolicy))),
    )
    return order, events, policy


@st.composite
def refund_shapes(draw: st.DrawFn, index: int, lines: tuple[OrderLine, ...]) -> dict[str, object]:
    picked = draw(st.lists(st.sampled_from(lines), max_size=3))
    return {
        "id": f"refund-{index}",
        "items": [(line.id, draw(st.integers(1, line.quantity)), draw(st.booleans())) for line in picked],
        "shipping": draw(st.booleans()),
        "amount": draw(st.sampled_from(["worth", "less", "more", "none"])),
        "delta": draw(st.integers(1, 5000)),
    }


def build_request(
    shape: dict[str, object], order: Order, provider: ProviderOrder, minute: int
) -> RefundRequest:
    """A platform refund: returned units (origin known or not), maybe shipping, maybe another amount."""
    items = []
    for line_id, quantity, with_origin in shape["items"]:  # type: ignore[attr-defined]
        name = order.line(line_id).name  # type: ignore[union-attr]
        holders = [c for c in provider.captures if any(x.name == name for x in c.lines)]
        captured = sum(x.quantity for c in holders for x in c.lines if x.name == name)
        if not holders:
            continue  # (returns of goods never captured are covered by the examples)
        origin = holders[hash(line_id) % len(holders)].reference if with_origin else None
        origin_id = origin[len("kom:s:") :] if origin else None
        items.append(RefundLine(line_id, min(quantity, captured), origin_id))
    request = RefundRequest(
        str(shape["id"]), at(minute), tuple(items), include_shipping=bool(shape["shipping"])
    )
    probe = plan(replace(order, refunds=(request,)), provider)
    worth = sum(a.refunded_amount for a in probe.actions if isinstance(a, RefundAction))
    mode, delta = shape["amount"], int(shape["delta"])  # type: ignore[call-overload]
    if mode == "less" and worth:
        return replace(request, amount=max(0, worth - delta))
    if mode == "more":
        return replace(request, amount=worth + delta)
    if mode == "none":
        return replace(request, lines=(), include_shipping=False, amount=delta)
    return request


def check_plan(result: Plan, order: Order, provider: ProviderOrder) -> None:
    for action in result.actions:
        amount = action.captured_amount if isinstance(action, CaptureAction) else action.refunded_amount
        assert sum(line.total_amount for line in action.lines) == amount
        assert amount >= 0
        for line in action.lines:
            assert klarna_line_problems(line) == [], (line, klarna_line_problems(line))
        if isinstance(action, CaptureAction):
            shipment = next(s for s in order.shipments if s.id == action.shipment_id)
            shipped = Counter({item.line_id: item.quantity for item in shipment.lines})
            goods = [x for x in action.lines if x.type not in {"shipping_fee", "gift_card", "store_credit"}]
            assert sum(x.quantity for x in goods) == sum(shipped.values())
    refused = {r.subject_id for r in result.refusals if r.subject == "refund"}
    assert not any(isinstance(a, RefundAction) and a.request_id in refused for a in result.actions)


def check_provider(provider: ProviderOrder) -> None:
    references = [line.reference for c in provider.captures for line in c.lines]
    assert len(references) == len(set(references)), "a reference is reused across captures"
    assert all(r and len(r) <= 64 for r in references)
    assert None not in allocation(provider), "a refund KOM sent would not be allocated"
    captured = {(c.capture_id, line.reference): line for c in provider.captures for line in c.lines}
    for key, (units, amount) in reference_usage(provider).items():
        # A negative line (gift card share) goes back at most in full, and never beyond zero.
        low, high = sorted((0, captured[key].total_amount))
        assert units <= captured[key].quantity and low <= amount <= high
    shipping = [line for c in provider.captures for line in c.lines if line.type == "shipping_fee"]
    assert len(shipping) <= 1


@dataclass(frozen=True)
class Step:
    order: Order
    before: ProviderOrder
    result: Plan
    after: ProviderOrder


def play(
    scenario: tuple[Order, list[tuple[str, object]], Policy],
    shipment: Callable[[Shipment, int], Shipment] = lambda s, _: s,
) -> Iterator[Step]:
    """Feed a scenario's events to the planner one by one, applying each plan."""
    base, events, policy = scenario
    order = replace(base, shipments=(), refunds=())
    provider = authorized(base)
    for minute, (kind, payload) in enumerate(events, start=20):
        if kind == "ship":
            assert isinstance(payload, Shipment)
            order = replace(order, shipments=(*order.shipments, shipment(payload, minute)))
        else:
            request = build_request(payload, order, provider, minute)  # type: ignore[arg-type]
            order = replace(order, refunds=(*order.refunds, request))
        result = plan(order, provider, policy)
        after = apply_all(provider, result.actions)
        yield Step(order, provider, result, after)
        provider = after


@settings()
@given(scenarios())
def test_random_orders_parcels_and_refunds_keep_every_invariant(
    scenario: tuple[Order, list[tuple[str, object]], Policy],
) -> None:
    base, _, policy = scenario
    order, provider = replace(base, shipments=(), refunds=()), authorized(base)
    for step in play(scenario):
        order, provider = step.order, step.after
        check_plan(step.result, order, step.before)
        check_provider(provider)
        again = plan(order, provider, policy)
        assert again.actions == (), "re-planning after applying the plan must yield nothing"
        assert not any(r.code is RefusalCode.PARTLY_SENT for r in again.refusals)
        for request in order.refunds:
            sent = sum(
                r.refunded_amount for r in provider.refunds if f":{request.id}:" in (r.reference or "")
            )
            refused = any(r.subject_id == request.id for r in again.refusals)
            if request.amount is not None and not refused:
                if base.gift_cards:  # the gift cards' share of returned goods is not Klarna's
                    assert sent <= request.amount
                else:
                    assert sent == request.amount, "a refund must total exactly what the platform asked"
    # Once everything shipped, each line is captured exactly once in total.
    if all(
        sum(i.quantity for s in order.shipments for i in s.lines if i.line_id == line.id) == line.quantity
        for line in base.lines
    ):
        assert provider.captured_amount == authorized(base).order_amount - (
            base.shipping.amount
            if base.shipping and not any(x.type == "shipping_fee" for c in provider.captures for x in c.lines)
            else 0
        )


@settings()
@given(scenarios(), st.integers(0, 20))
def test_a_plan_interrupted_anywhere_finishes_the_same_way(
    scenario: tuple[Order, list[tuple[str, object]], Policy], cut: int
) -> None:
    base, events, policy = scenario
    order = replace(base, refunds=())
    provider = authorized(base)
    provider = apply_all(provider, plan(order, provider, policy).actions)
    requests = []
    for minute, (kind, payload) in enumerate(events, start=20):
        if kind == "refund":
            requests.append(build_request(payload, order, provider, minute))  # type: ignore[arg-type]
    order = replace(order, refunds=tuple(requests))
    full = plan(order, provider, policy).actions
    interrupted = apply_all(provider, full[:cut])
    finished = apply_all(interrupted, plan(order, interrupted, policy).actions)
    straight = apply_all(provider, full)

    def shape(p: ProviderOrder) -> list[tuple[str | None, int]]:
        return [(r.reference, r.refunded_amount) for r in p.refunds]

    assert shape(finished) == shape(straight)
    assert plan(order, finished, policy).actions == ()


def test_reference_parsing_round_trips() -> None:
    assert parse_line_reference("SNEAKERS-42/12") == ("SNEAKERS-42", 12)
    assert parse_line_reference("A98765") is None
    assert parse_line_reference(None) is None
