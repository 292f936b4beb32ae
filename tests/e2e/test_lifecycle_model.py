"""Model-based test: random merchant sequences through the fake Saleor, KOM and the sandbox.

A hypothesis ``RuleBasedStateMachine`` plays the merchant on one Saleor order per example:
fulfil some units (with tracking, sometimes while Klarna's capture endpoint is down), return
units of a given parcel, cancel a fulfillment, grant refunds for returned units (with
shipping, with a restocking fee, or at once after shipping, before KOM has captured the
parcel), request them, re-request failed ones, refund an amount as goodwill, and cancel the
order when Saleor allows it. After every step ``Shop.settle`` lets Saleor deliver and KOM
work, then checks the oracle of ``lifecycle.py`` (which imports nothing from KOM).

One world (fake Saleor, KOM under uvicorn, sandbox) serves a whole run; each example is a
new order. CI runs a few short sequences; ``HYPOTHESIS_PROFILE=deep`` runs many longer ones.
A failure prints the shortest sequence hypothesis found, with the oracle's explanation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.e2e.harness import World, world
from tests.e2e.lifecycle import LAST_PARCEL_CHANNEL, Item, OrderSpec, Parcel, Shop
from tests.fakes.saleor import SaleorError

T = TypeVar("T")

NAMES = ("T-shirt", "Jeans", "Sneakers", "Cap")
PRICES = (3000, 999, 7000, 1500)
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"


@st.composite
def order_specs(draw: st.DrawFn) -> OrderSpec:
    """1–4 lines of 1–3 units, maybe a free line, maybe shipping, maybe a gift card."""
    count = draw(st.integers(1, 4))
    free = count > 1 and draw(st.booleans())
    items = tuple(
        Item(
            f"SKU-{i}",
            NAMES[i],
            draw(st.integers(1, 3)),
            0 if free and i == count - 1 else draw(st.sampled_from(PRICES)),
        )
        for i in range(count)
    )
    shipping = draw(st.sampled_from((0, 490, 1000)))
    policy: Literal["first_parcel", "last_parcel"] = "first_parcel"
    if shipping and draw(st.booleans()):
        policy = "last_parcel"
    goods = sum(item.unit * item.quantity for item in items)
    # Gift cards are covered by the named lifecycle tests: this oracle does not yet model the
    # gift-card share a refund takes back from its invoice (docs/lifecycle.md), so none here.
    gift = 0
    return OrderSpec(items, shipping=shipping, gift_card=gift if gift < goods else 0, shipping_policy=policy)


def some_units(data: st.DataObject, available: dict[int, int], label: str) -> dict[int, int]:
    """A non-empty choice of units out of ``available`` ({item: units})."""
    offered = {i: n for i, n in available.items() if n > 0}
    units = {i: data.draw(st.integers(0, n), label=f"{label} item {i}") for i, n in offered.items()}
    if not any(units.values()):
        first = data.draw(st.sampled_from(sorted(offered)), label=f"{label} item")
        units[first] = 1
    return {i: n for i, n in units.items() if n}


class LifecycleModel(RuleBasedStateMachine):
    w: ClassVar[World]
    loop: ClassVar[asyncio.AbstractEventLoop]

    def __init__(self) -> None:
        super().__init__()
        self.shop: Shop | None = None

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(step)

    @property
    def s(self) -> Shop:
        assert self.shop is not None
        return self.shop

    def settle(self, *, recover: bool | None = None) -> None:
        self.run(self.s.settle(recover=recover))

    @initialize(spec=order_specs())
    def open_order(self, spec: OrderSpec) -> None:
        self.w.sandbox.faults.clear()
        self.shop = self.run(Shop.open(self.w, spec))

    def teardown(self) -> None:
        self.w.sandbox.faults.clear()  # an outage never leaks into the next example

    # -- preconditions ---------------------------------------------------------------

    def _unfulfilled(self) -> dict[int, int]:
        return {i: self.s.unfulfilled(i) for i in range(len(self.s.items))}

    def can_fulfil(self) -> bool:
        return self.shop is not None and not self.s.cancelled and any(self._unfulfilled().values())

    def has_goods_out(self) -> bool:
        return self.shop is not None and any(any(p.units.values()) for p in self.s.active_parcels())

    def has_returned_ungranted(self) -> bool:
        if self.shop is None:
            return False
        shipping = bool(self.s.spec.shipping) and not self.s.shipping_granted
        return any(n > 0 for n in self.s.ungranted) or (shipping and any(self.s.returned))

    def grants_in(self, status: str) -> list[Any]:
        return [g for g in self.s.grants if self.s.grant_status(g) == status] if self.shop else []

    # -- merchant actions ------------------------------------------------------------

    @precondition(lambda self: self.can_fulfil())
    @rule(data=st.data())
    def fulfil(self, data: st.DataObject) -> None:
        units = some_units(data, self._unfulfilled(), "fulfil")
        tracking = data.draw(st.booleans(), label="tracking")
        outage = data.draw(st.booleans(), label="Klarna down") and not self.s.down
        self.s.fulfil(units, tracking=tracking, outage=outage)
        self.settle()

    @precondition(lambda self: self.can_fulfil())
    @rule(data=st.data())
    def fulfil_return_and_grant_at_once(self, data: st.DataObject) -> None:
        """Ship, take some units straight back and grant them before KOM saw the parcel:
        Saleor caps the grant at what was charged so far, silently."""
        units = some_units(data, self._unfulfilled(), "fulfil")
        parcel = self.s.fulfil(units)
        back = some_units(data, units, "return")
        self.s.return_units({parcel: back})
        grant = self.s.grant(back)
        if grant is not None and data.draw(st.booleans(), label="request at once"):
            self.s.request(grant)
        self.settle()

    @precondition(lambda self: self.has_goods_out())
    @rule(data=st.data())
    def return_units(self, data: st.DataObject) -> None:
        out = [p for p in self.s.active_parcels() if any(p.units.values())]
        first = data.draw(st.sampled_from(out), label="parcel")
        returns: dict[Parcel, dict[int, int]] = {first: some_units(data, first.units, "return")}
        others = [p for p in out if p is not first]
        two = bool(others) and data.draw(st.booleans(), label="from a second parcel too")
        if two:
            second = data.draw(st.sampled_from(others), label="second parcel")
            returns[second] = some_units(data, second.units, "return")
        self.s.return_units(returns)
        self.settle()

    @precondition(lambda self: self.shop is not None and bool(self.s.active_parcels()))
    @rule(data=st.data())
    def cancel_fulfillment(self, data: st.DataObject) -> None:
        self.s.cancel_fulfillment(data.draw(st.sampled_from(self.s.active_parcels()), label="parcel"))
        self.settle()

    @precondition(lambda self: self.has_returned_ungranted())
    @rule(data=st.data())
    def grant(self, data: st.DataObject) -> None:
        s = self.s
        units = {i: n for i, n in enumerate(s.ungranted) if n > 0}
        picked = some_units(data, units, "grant") if units else {}
        shipping = (
            bool(s.spec.shipping) and not s.shipping_granted and data.draw(st.booleans(), label="shipping")
        )
        if not picked and not shipping:
            shipping = bool(s.spec.shipping) and not s.shipping_granted
        worth = sum(s.items[i].unit * n for i, n in picked.items())
        fee = data.draw(st.sampled_from((0, 500)), label="restocking fee")
        grant = s.grant(picked, shipping=shipping, fee=fee if fee < worth else 0)
        if grant is not None and data.draw(st.booleans(), label="request now"):
            s.request(grant)
        self.settle()

    @precondition(lambda self: bool(self.grants_in("NONE")))
    @rule(data=st.data())
    def request(self, data: st.DataObject) -> None:
        self.s.request(data.draw(st.sampled_from(self.grants_in("NONE")), label="grant"))
        self.settle()

    @precondition(lambda self: bool(self.grants_in("FAILURE")))
    @rule(data=st.data())
    def request_again(self, data: st.DataObject) -> None:
        self.s.request(data.draw(st.sampled_from(self.grants_in("FAILURE")), label="failed grant"))
        self.settle()

    @precondition(lambda self: self.shop is not None and self.s.charged_in_saleor() > 0)
    @rule(data=st.data())
    def goodwill(self, data: st.DataObject) -> None:
        charged = self.s.charged_in_saleor()
        self.s.refund_amount(data.draw(st.integers(1, min(charged, 5000)), label="goodwill"))
        self.settle()

    @precondition(lambda self: self.shop is not None and self.s.can_cancel_order())
    @rule()
    def cancel_order(self) -> None:
        self.s.cancel_order()
        self.settle()

    @precondition(
        lambda self: self.shop is not None and not self.s.cancelled and bool(self.s.active_parcels())
    )
    @rule()
    def cancel_order_while_goods_are_out(self) -> None:
        with pytest.raises(SaleorError) as error:  # Saleor refuses it: nothing reaches KOM
            self.s.cancel_order()
        assert error.value.code == "CANNOT_CANCEL_ORDER"

    @precondition(lambda self: self.shop is not None and self.s.down)
    @rule()
    def klarna_is_back(self) -> None:
        self.settle(recover=True)

    @precondition(lambda self: self.shop is not None)
    @rule()
    def nothing_happens(self) -> None:
        """KOM's worker runs again (a duplicate webhook, the periodic sweep): it must change
        nothing: the oracle refuses any new capture or refund without a merchant action."""
        self.run(self.s.resync())


@pytest.mark.xfail(
    strict=False,
    reason="open (issue 9): units returned before their parcel was captured, then that parcel "
    "cancelled — KOM cannot yet tell such a return from one of a re-shipment the cancelled "
    "capture covered, and may refund the cancelled parcel's units for it; the oracle wants a refusal",
)
def test_random_merchant_sequences_keep_every_invoice_right(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    context = world(tmp_path)
    try:
        w = loop.run_until_complete(context.__aenter__())
        try:
            loop.run_until_complete(w.install())
            loop.run_until_complete(w.configure(LAST_PARCEL_CHANNEL, shipping_fee="last_parcel"))
            LifecycleModel.w, LifecycleModel.loop = w, loop
            run_state_machine_as_test(
                LifecycleModel,
                settings=settings(
                    max_examples=200 if DEEP else 8,
                    stateful_step_count=25 if DEEP else 10,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                    # CI: shrink one failure (a few minutes at most); deep: tell every bug apart.
                    report_multiple_bugs=DEEP,
                    # CI runs the same 8 sequences every time; the deep profile explores (and keeps
                    # what it finds in the example database).
                    derandomize=not DEEP,
                    database=None if not DEEP else settings.default.database,
                ),
            )
        finally:
            loop.run_until_complete(context.__aexit__(None, None, None))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
