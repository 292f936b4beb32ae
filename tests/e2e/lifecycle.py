"""A merchant's order, played through the fake Saleor, KOM and the Klarna sandbox, and the
oracle that checks what a shopper and an accountant would check after every step.

``Shop`` is both: each merchant method does what the Dashboard would (a Saleor mutation)
and writes it into the test's own record; ``await shop.settle()`` lets Saleor deliver its
webhooks and KOM's worker run, then reads Klarna's order and Saleor's transaction and
checks them against that record. The oracle imports nothing from KOM: every expectation
comes from what the merchant did (which units shipped in which parcel, which came back from
which parcel, what was granted) and the order's own prices, in integer minor units.

What it checks (a ``Violation`` subclass per kind, so hypothesis tells the bugs apart):

- every Klarna refund is allocated to a capture by the sandbox's ledger;
- each capture holds exactly the units its parcel held when KOM captured it, less units
  an earlier capture of a cancelled fulfillment already charged (those are "covered": no
  second capture, the tracking joins the covering capture); each goods line is worth its
  units (±1 per line), the shipping fee is captured once, on the first capture (or, under
  the last-parcel policy, only once every unit has shipped), gift cards only ever lower
  captures, and once every unit is captured the captures add up to what Klarna authorized;
- every refund of a granted refund takes each returned unit from the capture that charged
  it and nothing from a parcel none of whose units came back; it is worth the units (± 1
  per line) and the shipping fee if granted and captured, limited to what that capture has
  left; a reduced grant (restocking fee) refunds exactly its amount; a grant Saleor capped
  silently (made before the charges were reported) still refunds its lines' worth; money
  on a goods line at another price than the unit's (goodwill) is no returned unit; an
  amount-only (goodwill) refund refunds exactly its amount, and is refused only when the
  captures have less left; a grant is refused only when goods of it may never have been
  captured, or the captures have not enough left;
- Klarna is never refunded without a merchant's refund, except on an order cancellation,
  where exactly the goods captured for cancelled fulfillments go back, from the capture
  that charged them, and the rest of the authorization is released (the Klarna order is
  cancelled when nothing was captured);
- after a step with Klarna up: no parcel is left uncaptured, no refund pending, Saleor's
  CHARGE_SUCCESS / REFUND_SUCCESS sums equal Klarna's captured / refunded amounts, and
  captured − refunded equals the value of the charged goods not refunded (shipped and
  kept, back but not yet refunded, or waiting to be re-shipped) plus the shipping fee if
  captured and not refunded, less gift cards and goodwill, plus what reduced grants kept.

Allowed rounding: one minor unit per line. Where the record cannot say which capture a
returned unit came from (a re-shipment partly covered by an earlier capture, or covered by
two cancelled captures), the per-capture checks of that line only bound the total.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from adapters.klarna.sandbox import Fault
from adapters.klarna.sandbox.state import Capture as KlarnaCapture
from adapters.klarna.sandbox.state import Order as KlarnaOrder
from adapters.klarna.sandbox.state import OrderStatus
from adapters.klarna.sandbox.state import Refund as KlarnaRefund
from tests.e2e.harness import Order, World
from tests.fakes.saleor import SaleorError

__all__ = [
    "LAST_PARCEL_CHANNEL",
    "AllocationViolation",
    "CancelViolation",
    "CaptureViolation",
    "Grant",
    "Item",
    "MirrorViolation",
    "NetChargeViolation",
    "OrderSpec",
    "Parcel",
    "ProgressViolation",
    "RefundViolation",
    "Shop",
    "Violation",
    "major",
    "minor",
]

EXPONENT = 2  # EUR
LAST_PARCEL_CHANNEL = "last-parcel"  # a channel whose merchant setting captures shipping last
OUTAGE_FAULTS = 6  # 503s on POST /captures: more than one sync pass' retries


def minor(amount: Decimal | str | int, exponent: int = EXPONENT) -> int:
    """A major-unit amount in minor units, exactly (the test's own helper)."""
    scaled = Decimal(str(amount)).scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {exponent} decimals")
    return int(scaled)


def major(amount: int, exponent: int = EXPONENT) -> Decimal:
    return Decimal(amount).scaleb(-exponent)


def euros(amount: int) -> str:
    return f"€{major(amount)}"


class Violation(AssertionError):
    """Something a shopper or an accountant would object to."""


class AllocationViolation(Violation):
    """Klarna booked a refund on the order in general, not on an invoice."""


class CaptureViolation(Violation):
    """A capture (invoice) that does not hold what its parcel shipped."""


class RefundViolation(Violation):
    """A refund taken from the wrong invoice, of the wrong amount, or wrongly refused."""


class CancelViolation(Violation):
    """A cancelled order that still holds money it should not."""


class MirrorViolation(Violation):
    """Saleor's transaction and Klarna's order disagree on what was charged or refunded."""


class NetChargeViolation(Violation):
    """Captured − refunded differs from what the shopper should have paid."""


class ProgressViolation(Violation):
    """Something left undone although Klarna was reachable."""


@dataclass(frozen=True)
class Item:
    """One order line as sold: ``unit`` is the gross price of one unit in minor units."""

    sku: str
    name: str
    quantity: int
    unit: int

    @property
    def line(self) -> tuple[str, str, int, str, str]:
        return (self.sku, self.name, self.quantity, str(major(self.unit)), "0.25")


@dataclass(frozen=True)
class OrderSpec:
    items: tuple[Item, ...]
    shipping: int = 0  # gross, minor units; 0 = no shipping line
    gift_card: int = 0  # balance of a Saleor gift card used at checkout (it pays at most the total)
    shipping_policy: Literal["first_parcel", "last_parcel"] = "first_parcel"

    @property
    def channel(self) -> str:
        return LAST_PARCEL_CHANNEL if self.shipping_policy == "last_parcel" else "default-channel"

    @property
    def total(self) -> int:
        return sum(item.unit * item.quantity for item in self.items) + self.shipping

    def describe(self) -> str:
        lines = ", ".join(f"{i.quantity}×{i.name} {euros(i.unit)}" for i in self.items)
        extras = []
        if self.shipping:
            extras.append(f"shipping {euros(self.shipping)} ({self.shipping_policy})")
        if self.gift_card:
            extras.append(f"gift card {euros(self.gift_card)}")
        return lines + (f"; {'; '.join(extras)}" if extras else "")


# A unit's origin: the Klarna capture id that charged it, or None (never charged).
Origin = str | None


@dataclass(eq=False)
class Parcel:
    number: int  # 1-based, in the order the merchant created them
    id: str
    line_ids: dict[int, str]  # item index -> Saleor fulfillment line id
    units: dict[int, int]  # units still in the fulfillment
    tracking: str | None
    status: Literal["active", "cancelled", "gone"] = "active"
    state: Literal["pending", "captured", "covered", "free"] = "pending"
    capture: str | None = None
    sources: dict[int, Counter[Origin]] = field(default_factory=dict)
    covering: set[str] = field(default_factory=set)

    def __repr__(self) -> str:
        return f"parcel {self.number}"


@dataclass(eq=False)
class Charge:
    """One Klarna capture as the oracle read it."""

    capture_id: str
    klarna_reference: str
    parcel: int
    amount: int
    goods: dict[int, int]
    shipping: bool
    gift: int
    kinds: dict[str, tuple[str, int | None]]  # reference -> ("goods", item) | ("shipping"|"gift", None)
    shipping_info: list[dict[str, Any]]
    refunded: int = 0
    shipping_refunded: bool = False

    @property
    def left(self) -> int:
        return self.amount - self.refunded


@dataclass(eq=False)
class Grant:
    id: str
    units: dict[int, int]
    shipping: bool
    amount: int | None  # explicit amount the merchant typed (e.g. less a restocking fee)
    saleor_amount: int  # what Saleor recorded (capped silently at the charged amount)

    def __repr__(self) -> str:
        return f"grant {base64.b64decode(self.id).decode().rpartition(':')[2]}"


@dataclass
class _Request:
    kind: Literal["grant", "goodwill"]
    event_id: str
    grant: Grant | None = None
    amount: int = 0


@dataclass
class _Part:
    """One Klarna refund, read against the capture it was booked on."""

    refund: KlarnaRefund
    charge: Charge | None
    goods: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # item -> (units, amount, lines)
    shipping: int = 0
    money: list[tuple[str, int]] = field(default_factory=list)  # goods lines not at the unit price
    other: list[str] = field(default_factory=list)

    @property
    def amount(self) -> int:
        return self.refund.refunded_amount

    def money_text(self) -> str:
        return ", ".join(f"{euros(amount)} as {name!r}" for name, amount in self.money)


def _quantity(raw: Mapping[str, object]) -> int:
    quantity = raw.get("quantity", 0)
    return quantity if isinstance(quantity, int) else 0


def _take(bag: Counter[Origin], count: int, prefer: Iterable[Origin] = ()) -> Counter[Origin]:
    """Remove ``count`` units from ``bag``, preferred origins first, then charged before None."""
    taken: Counter[Origin] = Counter()
    order = [*prefer, *sorted((o for o in bag if o is not None), key=str), None]
    for origin in order:
        if count <= 0:
            break
        have = bag.get(origin, 0) - taken.get(origin, 0)
        if have > 0:
            moved = min(have, count)
            taken[origin] += moved
            count -= moved
    bag.subtract(taken)
    for origin in [o for o, n in bag.items() if n <= 0]:
        del bag[origin]
    if count:
        raise AssertionError(f"the test's record lost {count} units")  # a bug in this oracle
    return taken


class Shop:
    """One Saleor order, the merchant acting on it, and the oracle watching it."""

    def __init__(self, w: World, order: Order, spec: OrderSpec) -> None:
        self.w = w
        self.order = order
        self.spec = spec
        self.items = spec.items
        self.parcels: list[Parcel] = []
        self.charges: dict[str, Charge] = {}
        self.fulfilled = [0] * len(spec.items)
        self.returned: list[Counter[Origin]] = [Counter() for _ in spec.items]  # back, not refunded
        self.ungranted = [0] * len(spec.items)  # returned units no grant names yet
        self.pool: list[Counter[Origin]] = [Counter() for _ in spec.items]  # charged, cancelled, in stock
        self.ambiguous: set[int] = set()
        self.grants: list[Grant] = []
        self.shipping_granted = False
        self.shipping_waived = False  # refunded before it was ever captured
        self.retained = 0  # what reduced grants (or full captures) kept back from the shopper
        self.goodwill = 0
        self.cancelled = False
        self.down = False  # Klarna's capture endpoint fails (sandbox faults queued)
        self.seen_refunds = 0
        self.history: list[str] = [spec.describe()]
        self._requests: list[_Request] = []
        self._cancel_step = False
        self._tracking = 0

    @classmethod
    async def open(cls, w: World, spec: OrderSpec) -> Shop:
        order = await w.new_order(
            [item.line for item in spec.items],
            shipping=(str(major(spec.shipping)), "0.25") if spec.shipping else None,
            channel=spec.channel,
            gift_cards=[("GIFT-CARD-0001", str(major(spec.gift_card)))] if spec.gift_card else (),
        )
        return cls(w, order, spec)

    # -- what the merchant can do (each is one Dashboard action) -----------------------------

    def unfulfilled(self, index: int) -> int:
        return self.items[index].quantity - self.fulfilled[index]

    def active_parcels(self) -> list[Parcel]:
        return [p for p in self.parcels if p.status == "active"]

    @property
    def gift_card_paid(self) -> int:
        return min(self.spec.gift_card, self.spec.total)

    def fulfil(
        self, units: Mapping[int, int], *, tracking: bool | str = False, outage: bool = False
    ) -> Parcel:
        """``orderFulfill`` of ``{item: units}``; ``outage``: Klarna's captures fail from now on."""
        picked = {i: q for i, q in units.items() if q > 0}
        number = f"TRK-{self._tracking + 1}" if tracking is True else (tracking or None)
        if number:
            self._tracking += 1
        created = self.w.saleor.fulfill(
            self.order.id, {self.order.lines[i]: q for i, q in picked.items()}, tracking_number=number
        )
        parcel = Parcel(
            number=len(self.parcels) + 1,
            id=created.id,
            line_ids={i: created.line_ids[self.order.lines[i]] for i in picked},
            units=dict(picked),
            tracking=number,
        )
        self.parcels.append(parcel)
        for i, q in picked.items():
            self.fulfilled[i] += q
        self._log(f"fulfil {self._units(picked)} as {parcel}" + (f" tracking {number}" if number else ""))
        if outage:
            self.outage()
        return parcel

    def outage(self) -> None:
        """Klarna's capture endpoint answers 503 until the next step that recovers."""
        self.w.fault(Fault.http_error(503, method="POST", path="/captures$"), count=OUTAGE_FAULTS)
        self.down = True
        self._log("Klarna captures fail (503)")

    def return_units(self, returns: Mapping[Parcel, Mapping[int, int]]) -> None:
        """``orderFulfillmentReturnProducts`` of these units of these parcels (refund false)."""
        lines = {parcel.line_ids[i]: q for parcel, units in returns.items() for i, q in units.items() if q}
        self.w.saleor.return_products(self.order.id, lines)
        for parcel, units in returns.items():
            for i, q in units.items():
                if not q:
                    continue
                assert 0 < q <= parcel.units.get(i, 0), f"{parcel} holds no {q} × item {i}"
                if parcel.state == "pending":
                    origins = self._returned_before_capture(parcel, i, q)
                else:
                    bag = parcel.sources.setdefault(i, Counter())
                    if len(bag) > 1:
                        self.ambiguous.add(i)
                    origins = _take(bag, q)
                parcel.units[i] -= q
                self.returned[i].update(origins)
                self.ungranted[i] += q
            if not any(parcel.units.values()):
                parcel.status = "gone"  # Saleor deletes a fulfillment left without lines
        described = "; ".join(f"{self._units(u)} from {p}" for p, u in returns.items())
        self._log(f"return {described}")

    def _returned_before_capture(self, parcel: Parcel, i: int, q: int) -> Counter[Origin]:
        """Origins of ``q`` units of item ``i`` back from a parcel KOM has not captured yet.

        What KOM will capture of the parcel is what is left of it, less what an earlier
        capture of a cancelled fulfillment covers; so the returned units are uncharged ones
        first, then units that earlier capture charged (taken from the pool now)."""
        pool = self.pool[i]
        covered = min(parcel.units[i], sum(pool.values()))
        uncovered = parcel.units[i] - covered
        never = min(q, uncovered)
        origins: Counter[Origin] = Counter({None: never}) if never else Counter()
        if q > never:
            if never or len(pool) > 1 or covered < parcel.units[i]:
                self.ambiguous.add(i)
            origins.update(_take(pool, q - never, prefer=self._capture_order()))
        return origins

    def cancel_fulfillment(self, parcel: Parcel) -> None:
        """``orderFulfillmentCancel``: the units go back in stock, unfulfilled."""
        self.w.saleor.cancel_fulfillment(parcel.id)
        for i, q in parcel.units.items():
            self.fulfilled[i] -= q
        if parcel.state in ("captured", "covered"):
            for i, bag in parcel.sources.items():
                charged = Counter({o: n for o, n in bag.items() if o is not None and n > 0})
                self.pool[i].update(charged)
        parcel.status = "cancelled"
        self._log(f"cancel {parcel} ({parcel.state})")

    def grant(
        self,
        units: Mapping[int, int],
        *,
        shipping: bool = False,
        fee: int = 0,
    ) -> Grant | None:
        """``orderGrantRefundCreate`` for returned units (and shipping); ``fee``: the merchant
        types the amount, that much less than the lines are worth (a restocking fee).
        None when Saleor refuses it."""
        picked = {i: q for i, q in units.items() if q > 0}
        amount = None
        if fee:
            worth = sum(self.items[i].unit * q for i, q in picked.items()) + (
                self.spec.shipping if shipping else 0
            )
            amount = worth - fee
        try:
            grant_id = self.w.saleor.grant_refund(
                self.order.id,
                self.order.transaction,
                {self.order.lines[i]: q for i, q in picked.items()},
                include_shipping=shipping,
                amount=None if amount is None else major(amount),
            )
        except SaleorError as error:
            self._log(f"grant {self._units(picked)} refused by Saleor: {error.code}")
            return None
        saleor_amount = minor(self.w.saleor.granted_refund(grant_id)["amount"])
        grant = Grant(grant_id, picked, shipping, amount, saleor_amount)
        self.grants.append(grant)
        for i, q in picked.items():
            self.ungranted[i] -= q
        self.shipping_granted = self.shipping_granted or shipping
        what = self._units(picked) + (" + shipping" if shipping else "")
        typed = f", amount {euros(amount)}" if amount is not None else ""
        self._log(f"{grant}: {what}{typed} (Saleor: {euros(saleor_amount)})")
        return grant

    def grant_status(self, grant: Grant) -> str:
        status: str = self.w.saleor.granted_refund(grant.id)["status"]
        return status

    def request(self, grant: Grant) -> bool:
        """``transactionRequestRefundForGrantedRefund``; False when Saleor refuses it."""
        try:
            event = self.w.saleor.request_refund_for_granted_refund(grant.id)
        except SaleorError as error:
            self._log(f"request {grant}: refused by Saleor ({error.code})")
            return False
        self._requests.append(_Request("grant", event, grant=grant))
        self._log(f"request {grant}")
        return True

    def charged_in_saleor(self) -> int:
        return minor(self.w.saleor.transaction(self.order.transaction).charged)

    def refund_amount(self, amount: int) -> bool:
        """``transactionRequestAction(REFUND, amount)``: an amount-only (goodwill) refund."""
        try:
            event = self.w.saleor.request_action(self.order.transaction, "REFUND", major(amount))
        except SaleorError as error:
            self._log(f"goodwill {euros(amount)}: refused by Saleor ({error.code})")
            return False
        self._requests.append(_Request("goodwill", event, amount=amount))
        self._log(f"goodwill refund {euros(amount)}")
        return True

    def can_cancel_order(self) -> bool:
        return not self.cancelled and not self.active_parcels()

    def cancel_order(self) -> None:
        """``orderCancel`` (Saleor refuses it while goods are out)."""
        self.w.saleor.cancel_order(self.order.id)
        self.cancelled = True
        self._cancel_step = True
        self._log("cancel the order")

    async def resync(self) -> None:
        """Nothing happens in Saleor, but KOM syncs the order again (a duplicate hint, a
        sweep): a step like any other, so any new capture or refund is a violation."""
        installation = await self.w.store.installation_by_url(self.w.saleor.api_url)
        assert installation is not None
        await self.w.store.touch_order(installation.id, self.order.id)
        self._log("KOM syncs the order again")
        await self.settle()

    # -- one step: Saleor delivers, KOM works, the oracle checks ----------------------------

    async def settle(self, *, recover: bool | None = None) -> None:
        """Deliver Saleor's webhooks and run KOM's worker until idle, then check everything.

        ``recover`` (default: when this step asks Klarna for a refund or cancels): Klarna is
        reachable again and KOM's backoff has passed before the step runs.
        """
        if recover is None:
            recover = bool(self._requests) or self._cancel_step
        if recover and self.down:
            self.w.sandbox.faults.clear()
            self.w.clock.advance(60)
            self.down = False
            self._log("Klarna is back")
        assert len(self._requests) <= 1, "one refund request per step, so the oracle can tell refunds apart"
        healthy = not self.down
        await self.w.settle()
        try:
            await self._check(healthy)
        finally:
            self._requests.clear()
            self._cancel_step = False

    async def _check(self, healthy: bool) -> None:
        klarna = self.w.klarna(self.order)
        ledger = await self.w.ledger(self.order)
        problems: list[Violation] = []
        new_captures = klarna.captures[len(self.charges) :]
        problems += self._attribute(new_captures, healthy)
        new_refunds = klarna.refunds[self.seen_refunds :]
        self.seen_refunds = len(klarna.refunds)
        problems += self._refunds(new_refunds, ledger, klarna, healthy)
        if healthy:
            problems += self._healthy(klarna)
        if problems:
            order = [
                AllocationViolation,
                CaptureViolation,
                RefundViolation,
                CancelViolation,
                ProgressViolation,
                MirrorViolation,
                NetChargeViolation,
            ]
            problems.sort(key=lambda p: order.index(type(p)))
            story = "\n  ".join(self.history)
            details = "\n- ".join(str(p) for p in problems)
            raise type(problems[0])(
                f"{details.strip()}\n(Klarna order {self.order.klarna_id})\nsteps:\n  {story}"
            )

    # -- captures ------------------------------------------------------------------------

    def _item_named(self, name: object) -> int | None:
        for index, item in enumerate(self.items):
            if name == item.name or (isinstance(name, str) and name.startswith(f"{item.name} (")):
                return index
        return None

    def _coverage(self, parcel: Parcel) -> tuple[dict[int, Counter[Origin]], dict[int, int]]:
        """Units of ``parcel`` an earlier capture of a cancelled fulfillment charged, and the rest."""
        covered: dict[int, Counter[Origin]] = {}
        rest: dict[int, int] = {}
        for i, q in parcel.units.items():
            pool = Counter(self.pool[i])
            n = min(q, sum(pool.values()))
            if n:
                if len(pool) > 1 or n < q:
                    self.ambiguous.add(i)  # KOM may pick other captures, or units, than we would
                covered[i] = _take(pool, n, prefer=self._capture_order())
            if q - n:
                rest[i] = q - n
        return covered, rest

    def _capture_order(self) -> list[Origin]:
        return list(self.charges)

    def _shipping_due(self) -> bool:
        """The next capture must carry the shipping fee (first-parcel policy)."""
        return (
            bool(self.spec.shipping)
            and self.spec.shipping_policy == "first_parcel"
            and not self.shipping_waived
            and not any(c.shipping for c in self.charges.values())
        )

    def _attribute(self, captures: list[KlarnaCapture], healthy: bool) -> list[Violation]:
        """Match new captures to the parcels waiting for one, in the order they shipped."""
        problems: list[Violation] = []
        queue = list(captures)
        for parcel in [p for p in self.parcels if p.status == "active" and p.state == "pending"]:
            covered, rest = self._coverage(parcel)
            paid = {i: q for i, q in rest.items() if self.items[i].unit > 0}
            if not paid and not self._shipping_due():
                # Nothing to charge (free goods, or goods an earlier capture covers); under the
                # last-parcel policy a parcel of free goods may still carry the shipping fee.
                optional = (
                    queue
                    and self.spec.shipping_policy == "last_parcel"
                    and rest
                    and self._goods_of(queue[0]) == {i: q for i, q in rest.items() if q}
                )
                if optional:
                    capture = queue.pop(0)
                    problems += self._check_capture(parcel, capture, rest)
                    self._charge(parcel, capture, covered, rest)
                    continue
                if not queue and not healthy:
                    break  # KOM may not have reached it yet
                self._settle_uncharged(parcel, covered, rest)
                continue
            if not queue:
                if healthy:
                    problems.append(
                        ProgressViolation(f"{parcel} ({self._units(parcel.units)}) was never captured")
                    )
                break
            capture = queue.pop(0)
            problems += self._check_capture(parcel, capture, rest)
            self._charge(parcel, capture, covered, rest)
        for capture in queue:
            problems.append(
                CaptureViolation(
                    f"capture {capture.klarna_reference} ({self._capture_text(capture)}) matches no "
                    "parcel waiting to be captured"
                )
            )
            self._charge(None, capture, {}, {})
        return problems

    def _goods_of(self, capture: KlarnaCapture) -> dict[int, int]:
        goods: dict[int, int] = {}
        for line in capture.order_lines:
            if line.raw.get("type") not in ("shipping_fee", "gift_card", "store_credit"):
                index = self._item_named(line.raw.get("name"))
                if index is not None:
                    goods[index] = goods.get(index, 0) + _quantity(line.raw)
        return {i: q for i, q in goods.items() if q}

    def _settle_uncharged(
        self, parcel: Parcel, covered: dict[int, Counter[Origin]], rest: dict[int, int]
    ) -> None:
        parcel.state = "covered" if covered else "free"
        for i, origins in covered.items():
            self.pool[i].subtract(origins)
            self.pool[i] = +self.pool[i]
            parcel.sources.setdefault(i, Counter()).update(origins)
            parcel.covering.update(o for o in origins if o is not None)
        for i, q in rest.items():  # free items: nothing to charge
            parcel.sources.setdefault(i, Counter())[None] += q

    def _charge(
        self,
        parcel: Parcel | None,
        capture: KlarnaCapture,
        covered: dict[int, Counter[Origin]],
        rest: dict[int, int],
    ) -> None:
        goods: dict[int, int] = {}
        kinds: dict[str, tuple[str, int | None]] = {}
        shipping = False
        gift = 0
        for line in capture.order_lines:
            kind = line.raw.get("type")
            reference = line.reference or ""
            if kind == "shipping_fee":
                shipping = True
                kinds[reference] = ("shipping", None)
            elif kind in ("gift_card", "store_credit"):
                gift += line.total_amount
                kinds[reference] = ("gift", None)
            else:
                index = self._item_named(line.raw.get("name"))
                if index is not None:
                    goods[index] = goods.get(index, 0) + _quantity(line.raw)
                    kinds[reference] = ("goods", index)
        charge = Charge(
            capture_id=capture.capture_id,
            klarna_reference=capture.klarna_reference,
            parcel=parcel.number if parcel else 0,
            amount=capture.captured_amount,
            goods=goods,
            shipping=shipping,
            gift=gift,
            kinds=kinds,
            shipping_info=list(capture.shipping_info),
        )
        self.charges[capture.capture_id] = charge
        if parcel is None:
            return
        parcel.state = "captured"
        parcel.capture = capture.capture_id
        for i, origins in covered.items():
            self.pool[i].subtract(origins)
            self.pool[i] = +self.pool[i]
            parcel.sources.setdefault(i, Counter()).update(origins)
            parcel.covering.update(o for o in origins if o is not None)
        for i, q in rest.items():
            parcel.sources.setdefault(i, Counter())[capture.capture_id] += q

    def _check_capture(
        self, parcel: Parcel, capture: KlarnaCapture, expected: dict[int, int]
    ) -> list[Violation]:
        problems: list[Violation] = []
        where = f"capture {capture.klarna_reference} of {parcel}"
        goods: dict[int, int] = {}
        amounts: dict[int, tuple[int, int]] = {}
        shipping_total = 0
        shipping_lines = 0
        gift = 0
        for line in capture.order_lines:
            kind = line.raw.get("type")
            if kind == "shipping_fee":
                shipping_total += line.total_amount
                shipping_lines += 1
            elif kind in ("gift_card", "store_credit"):
                gift += line.total_amount
            else:
                index = self._item_named(line.raw.get("name"))
                if index is None:
                    problems.append(
                        CaptureViolation(f"{where} has a line {line.raw.get('name')!r} the order lacks")
                    )
                    continue
                quantity = _quantity(line.raw)
                goods[index] = goods.get(index, 0) + quantity
                total, count = amounts.get(index, (0, 0))
                amounts[index] = (total + line.total_amount, count + 1)
        want = {i: q for i, q in expected.items() if q}
        if {i: q for i, q in goods.items() if q} != want:
            problems.append(
                CaptureViolation(
                    f"{where} holds {self._units(goods)}, but the parcel shipped {self._units(want)}"
                )
            )
        for i, (total, count) in amounts.items():
            worth = self.items[i].unit * goods[i]
            if abs(total - worth) > count:
                problems.append(
                    CaptureViolation(
                        f"{where}: {goods[i]} × {self.items[i].name} captured for {euros(total)}, "
                        f"worth {euros(worth)}"
                    )
                )
        earlier = [c for c in self.charges.values()]
        if shipping_lines:
            if shipping_lines > 1 or shipping_total != self.spec.shipping:
                problems.append(
                    CaptureViolation(
                        f"{where} captures shipping {euros(shipping_total)}, not {euros(self.spec.shipping)}"
                    )
                )
            if any(c.shipping for c in earlier):
                problems.append(CaptureViolation(f"{where} captures the shipping fee a second time"))
            if self.shipping_waived:
                problems.append(
                    CaptureViolation(
                        f"{where} captures the shipping fee, which was refunded before it was captured"
                    )
                )
            if self.spec.shipping_policy == "last_parcel" and any(
                self.fulfilled[i] < item.quantity for i, item in enumerate(self.items)
            ):
                problems.append(
                    CaptureViolation(
                        f"{where} captures shipping although the order has not shipped completely"
                    )
                )
        elif (
            self.spec.shipping
            and self.spec.shipping_policy == "first_parcel"
            and not self.shipping_waived
            and not any(c.shipping for c in earlier)
        ):
            problems.append(
                CaptureViolation(f"{where} is the first capture but does not carry the shipping fee")
            )
        if gift > 0:
            problems.append(CaptureViolation(f"{where} has a positive gift card line {euros(gift)}"))
        gifts = sum(c.gift for c in earlier) + gift
        if -gifts > self.gift_card_paid:
            problems.append(
                CaptureViolation(
                    f"captures deduct {euros(-gifts)} of gift cards; they paid {euros(self.gift_card_paid)}"
                )
            )
        lines_total = sum(line.total_amount for line in capture.order_lines)
        if lines_total != capture.captured_amount:
            problems.append(
                CaptureViolation(
                    f"{where}: lines add up to {euros(lines_total)}, "
                    f"captured {euros(capture.captured_amount)}"
                )
            )
        if parcel.tracking and not any(
            info.get("tracking_number") == parcel.tracking for info in capture.shipping_info
        ):
            problems.append(CaptureViolation(f"{where} lacks the parcel's tracking number {parcel.tracking}"))
        return problems

    def _capture_text(self, capture: KlarnaCapture) -> str:
        return ", ".join(f"{line.raw.get('quantity')}×{line.raw.get('name')}" for line in capture.order_lines)

    # -- refunds -------------------------------------------------------------------------

    def _parts(
        self, refunds: list[KlarnaRefund], ledger: dict[str, Any]
    ) -> tuple[list[_Part], list[Violation]]:
        problems: list[Violation] = []
        booked = {entry["refund_id"]: entry for entry in ledger["refunds"]}
        parts = []
        for refund in refunds:
            entry = booked[refund.refund_id]
            charge = self.charges.get(entry["capture_id"] or "")
            if not entry["allocated"] or charge is None:
                problems.append(
                    AllocationViolation(
                        f"refund {euros(refund.refunded_amount)} ({refund.description}) is not allocated "
                        f"to an invoice: {entry['reason']}"
                    )
                )
            part = _Part(refund, charge)
            for line in refund.order_lines:
                kind = charge.kinds.get(line.reference or "") if charge else None
                if kind is None:
                    part.other.append(f"{line.raw.get('name')} ({line.reference})")
                elif kind[0] == "goods" and line.raw.get("unit_price") != self.items[kind[1] or 0].unit:
                    # Not units at their price: money put on the line (goodwill).
                    part.money.append((str(line.raw.get("name")), line.total_amount))
                elif kind[0] == "goods":
                    assert kind[1] is not None
                    units, amount, count = part.goods.get(kind[1], (0, 0, 0))
                    part.goods[kind[1]] = (
                        units + _quantity(line.raw),
                        amount + line.total_amount,
                        count + 1,
                    )
                elif kind[0] == "shipping":
                    part.shipping += line.total_amount
                else:
                    part.other.append(f"{line.raw.get('name')} ({line.reference})")
            parts.append(part)
        return parts, problems

    def _refunds(
        self, refunds: list[KlarnaRefund], ledger: dict[str, Any], klarna: KlarnaOrder, healthy: bool
    ) -> list[Violation]:
        parts, problems = self._parts(refunds, ledger)
        if self._requests:
            request = self._requests[0]
            if request.kind == "grant":
                assert request.grant is not None
                problems += self._grant_refunded(request.grant, parts, healthy)
            else:
                problems += self._goodwill_refunded(request, parts, healthy)
        elif self._cancel_step:
            problems += self._cancel_refunded(parts, klarna, healthy)
        elif parts:
            problems.append(
                RefundViolation(
                    "Klarna refunded "
                    + ", ".join(f"{euros(p.amount)} on {self._invoice(p)}" for p in parts)
                    + " although the merchant refunded nothing in this step"
                )
            )
        for part in parts:
            if part.charge is not None:
                part.charge.refunded += part.amount
        return problems

    def _invoice(self, part: _Part) -> str:
        return (
            f"invoice {part.charge.klarna_reference} (parcel {part.charge.parcel})"
            if part.charge
            else "no invoice"
        )

    def _room(self, charge: Charge) -> int:
        return charge.left

    def _grant_refunded(self, grant: Grant, parts: list[_Part], healthy: bool) -> list[Violation]:
        problems: list[Violation] = []
        status = self.grant_status(grant)
        what = f"{grant} ({self._units(grant.units)}{' + shipping' if grant.shipping else ''})"
        shipping_charge = next((c for c in self.charges.values() if c.shipping), None)
        shipping_due = (
            grant.shipping and shipping_charge is not None and not shipping_charge.shipping_refunded
        )
        never = {i: self.returned[i].get(None, 0) for i in grant.units if self.items[i].unit > 0}
        charged_back = {i: sum(n for o, n in self.returned[i].items() if o is not None) for i in grant.units}
        worth = sum(self.items[i].unit * min(q, charged_back[i]) for i, q in grant.units.items()) + (
            self.spec.shipping if shipping_due else 0
        )
        holders = {o for i in grant.units for o in self.returned[i] if o is not None}
        if shipping_due and shipping_charge is not None:
            holders.add(shipping_charge.capture_id)
        room = sum(self.charges[c].left for c in holders)
        may_refuse = (
            [f"{n} × {self.items[i].name} came back before they were captured" for i, n in never.items() if n]
            + [
                f"{self.items[i].name}: the record cannot tell the origin"
                for i in grant.units
                if i in self.ambiguous
            ]
            + ([f"the invoices have only {euros(room)} left of {euros(worth)}"] if room < worth else [])
        )
        if status in ("NONE", "PENDING"):
            if healthy:
                problems.append(ProgressViolation(f"{what} is still {status} in Saleor after KOM ran"))
            return problems
        if status == "FAILURE":
            if parts:
                problems.append(
                    RefundViolation(
                        f"{what} was reported failed, yet Klarna refunded "
                        f"{euros(sum(p.amount for p in parts))}"
                    )
                )
            if not may_refuse and worth > 0:
                failures = self.w.saleor.transaction(self.order.transaction).of_type("REFUND_FAILURE")
                reason = failures[-1].message if failures else "?"
                problems.append(
                    RefundViolation(
                        f"{what} was refused although its goods came back from captured parcels and the "
                        f"invoices have {euros(room)} left for {euros(worth)}: {reason!r}"
                    )
                )
            return problems
        # SUCCESS: each Klarna refund is one invoice's share of the grant.
        used = {i: 0 for i in grant.units}
        expected_total = 0
        actual_total = 0
        shipping_refunded = False
        for part in parts:
            charge = part.charge
            if charge is None:
                continue
            value = 0
            slack = 0
            for i, (units, amount, count) in part.goods.items():
                item = self.items[i]
                granted = grant.units.get(i, 0)
                if i not in grant.units:
                    problems.append(
                        RefundViolation(
                            f"{self._invoice(part)}: refunds {units} × {item.name}, "
                            f"which {grant} does not name"
                        )
                    )
                    continue
                bag = self.returned[i]
                available = (
                    sum(n for o, n in bag.items() if o is not None)
                    if i in self.ambiguous
                    else bag.get(charge.capture_id, 0)
                )
                if item.unit and units > available:
                    problems.append(
                        RefundViolation(
                            f"{self._invoice(part)}: refunds {units} × {item.name} for {what}, but "
                            f"{'only ' + str(available) if available else 'none'} of the returned units "
                            f"came from that parcel (returned: {self._origins(bag)})"
                        )
                    )
                if used[i] + units > granted:
                    problems.append(
                        RefundViolation(f"{what}: refunds {used[i] + units} × {item.name}, granted {granted}")
                    )
                if item.unit:
                    _take(bag, min(units, sum(bag.values())), prefer=[charge.capture_id])
                used[i] += units
                worth_units = item.unit * units
                value += worth_units
                slack += count
                if grant.amount is None and abs(amount - worth_units) > count and amount > worth_units:
                    problems.append(
                        RefundViolation(
                            f"{self._invoice(part)}: {units} × {item.name} refunded for "
                            f"{euros(amount)}, worth {euros(worth_units)}"
                        )
                    )
            if part.shipping:
                if not grant.shipping:
                    problems.append(
                        RefundViolation(
                            f"{self._invoice(part)} refunds shipping, which {grant} does not grant"
                        )
                    )
                elif not charge.shipping or charge.shipping_refunded or shipping_refunded:
                    problems.append(
                        RefundViolation(f"{self._invoice(part)} refunds a shipping fee it did not capture")
                    )
                else:
                    charge.shipping_refunded = True
                    shipping_refunded = True
                    value += self.spec.shipping
                    slack += 1
            if part.money:
                problems.append(
                    RefundViolation(
                        f"{self._invoice(part)} adds {part.money_text()} to the refund of {what}: money "
                        "that is not the price of a returned unit"
                    )
                )
            if part.other:
                problems.append(
                    RefundViolation(
                        f"{self._invoice(part)}: refund lines {part.other} are not returned goods of {what}"
                    )
                )
            due = min(value, self._room(charge))
            if grant.amount is None and abs(part.amount - due) > slack:
                problems.append(
                    RefundViolation(
                        f"{self._invoice(part)} refunded {euros(part.amount)} for {what}; the returned goods "
                        f"{'and shipping ' if part.shipping else ''}from that parcel are worth {euros(value)}"
                        f"{f' (it has {euros(self._room(charge))} left)' if due < value else ''}"
                    )
                )
            if grant.amount is not None and part.amount > value + slack:
                problems.append(
                    RefundViolation(
                        f"{self._invoice(part)} refunded {euros(part.amount)}, "
                        f"more than the {euros(value)} of goods"
                    )
                )
            expected_total += value
            actual_total += part.amount
        for i, q in grant.units.items():
            item = self.items[i]
            if not item.unit:
                continue
            must = q - never.get(i, 0)
            if i not in self.ambiguous and used[i] < min(must, charged_back[i]) and not may_refuse:
                problems.append(
                    RefundViolation(
                        f"{what} succeeded but refunded only {used[i]} of {q} × {item.name}, although "
                        f"{min(must, charged_back[i])} came back from captured parcels"
                    )
                )
            left = q - used[i]
            if left > 0:  # granted units KOM did not refund: never charged ones first
                taken = _take(self.returned[i], min(left, sum(self.returned[i].values())), prefer=[None])
                # Charged ones not refunded stay with the merchant (reported above unless legitimate).
                self.retained += item.unit * sum(n for o, n in taken.items() if o is not None)
        if grant.shipping and not shipping_refunded:
            if shipping_due:
                problems.append(
                    RefundViolation(f"{what} grants shipping, but no invoice refunded the shipping fee")
                )
            elif shipping_charge is None:
                self.shipping_waived = True  # refunded before it was ever captured: never charge it
        if grant.amount is not None:
            target = min(grant.amount, room)
            if actual_total != target and not may_refuse:
                problems.append(
                    RefundViolation(
                        f"{what} with amount {euros(grant.amount)} refunded {euros(actual_total)} on Klarna"
                    )
                )
        if not parts and worth > 0 and not may_refuse:
            problems.append(RefundViolation(f"{what} was reported refunded, but Klarna refunded nothing"))
        self.retained += max(expected_total - actual_total, 0)
        return problems

    def _goodwill_refunded(self, request: _Request, parts: list[_Part], healthy: bool) -> list[Violation]:
        problems: list[Violation] = []
        outcome = self._request_outcome(request.event_id)
        total = sum(p.amount for p in parts)
        what = f"goodwill refund {euros(request.amount)}"
        if outcome is None:
            if healthy:
                problems.append(ProgressViolation(f"{what} is still pending in Saleor after KOM ran"))
            return problems
        if outcome == "REFUND_FAILURE":
            if parts:
                problems.append(
                    RefundViolation(f"{what} was reported failed, yet Klarna refunded {euros(total)}")
                )
            room = sum(c.left for c in self.charges.values())
            if request.amount <= room:
                problems.append(
                    RefundViolation(f"{what} was refused although the invoices have {euros(room)} left")
                )
            return problems
        if total != request.amount:
            problems.append(RefundViolation(f"{what} refunded {euros(total)} on Klarna"))
        for part in parts:
            if part.other:
                problems.append(RefundViolation(f"{self._invoice(part)}: goodwill on lines {part.other}"))
        self.goodwill += total
        return problems

    def _request_outcome(self, event_id: str) -> str | None:
        events = self.w.saleor.transaction(self.order.transaction).events
        position = next(n for n, e in enumerate(events) if e.id == event_id)
        psp = events[position].psp_reference
        for event in events[position + 1 :]:
            if event.psp_reference == psp and event.type in ("REFUND_SUCCESS", "REFUND_FAILURE"):
                return event.type
        return None

    def _cancel_refunded(self, parts: list[_Part], klarna: KlarnaOrder, healthy: bool) -> list[Violation]:
        problems: list[Violation] = []
        for part in parts:
            charge = part.charge
            if charge is None:
                continue
            value = 0
            slack = 0
            for i, (units, _amount, count) in part.goods.items():
                held = self.pool[i].get(charge.capture_id, 0)
                if i in self.ambiguous:
                    held = sum(self.pool[i].values())
                if units > held and self.items[i].unit:
                    problems.append(
                        CancelViolation(
                            f"on cancelling the order, {self._invoice(part)} refunds {units} × "
                            f"{self.items[i].name}; only {held} of them were captured there and never shipped"
                        )
                    )
                _take(self.pool[i], min(units, sum(self.pool[i].values())), prefer=[charge.capture_id])
                value += self.items[i].unit * units
                slack += count
            if part.shipping or part.other or part.money:
                problems.append(
                    CancelViolation(
                        f"on cancelling the order, {self._invoice(part)} refunds shipping or other lines"
                    )
                )
            if abs(part.amount - min(value, self._room(charge))) > slack:
                problems.append(
                    CancelViolation(
                        f"on cancelling the order, {self._invoice(part)} refunded {euros(part.amount)} "
                        f"for goods worth {euros(value)}"
                    )
                )
            self.retained += max(value - part.amount, 0)
        if not healthy:
            return problems
        still = {
            self.items[i].name: sum(bag.values())
            for i, bag in enumerate(self.pool)
            if bag and self.items[i].unit
        }
        if still:
            problems.append(
                CancelViolation(
                    "the order was cancelled, but goods captured for cancelled fulfillments stay "
                    f"charged: {still}"
                )
            )
        if not klarna.captures and klarna.status is not OrderStatus.CANCELLED:
            problems.append(
                CancelViolation(
                    f"the order was cancelled before any capture, but the Klarna order is {klarna.status}"
                )
            )
        if klarna.captures and klarna.remaining_authorized_amount:
            problems.append(
                CancelViolation(
                    f"the order was cancelled, but {euros(klarna.remaining_authorized_amount)} "
                    "stays authorized on Klarna"
                )
            )
        return problems

    # -- after a step with Klarna up -----------------------------------------------------

    def _healthy(self, klarna: KlarnaOrder) -> list[Violation]:
        problems: list[Violation] = []
        transaction = self.w.saleor.transaction(self.order.transaction)
        charged = sum(minor(e.amount) for e in transaction.of_type("CHARGE_SUCCESS"))
        refunded = sum(minor(e.amount) for e in transaction.of_type("REFUND_SUCCESS"))
        if charged != klarna.captured_amount:
            problems.append(
                MirrorViolation(
                    f"Saleor shows {euros(charged)} charged, Klarna captured {euros(klarna.captured_amount)}"
                )
            )
        if refunded != klarna.refunded_amount:
            problems.append(
                MirrorViolation(
                    f"Saleor shows {euros(refunded)} refunded, "
                    f"Klarna refunded {euros(klarna.refunded_amount)}"
                )
            )
        if transaction.refund_pending:
            problems.append(
                ProgressViolation(f"Saleor still shows {transaction.refund_pending} refund pending")
            )
        for grant in self.grants:
            if self.grant_status(grant) == "PENDING":
                problems.append(ProgressViolation(f"{grant} is still PENDING"))

        def value(bags: Iterable[Counter[Origin]], i: int) -> int:
            return self.items[i].unit * sum(n for bag in bags for o, n in bag.items() if o is not None)

        kept = sum(
            value([p.sources.get(i, Counter()) for p in self.active_parcels()], i)
            for i in range(len(self.items))
        )
        back = sum(value([self.returned[i]], i) for i in range(len(self.items)))
        waiting = sum(value([self.pool[i]], i) for i in range(len(self.items)))
        shipping = sum(
            self.spec.shipping for c in self.charges.values() if c.shipping and not c.shipping_refunded
        )
        gifts = sum(c.gift for c in self.charges.values())
        expected = kept + back + waiting + shipping + gifts + self.retained - self.goodwill
        net = klarna.captured_amount - klarna.refunded_amount
        if net != expected or net < 0:
            problems.append(
                NetChargeViolation(
                    f"Klarna holds {euros(net)} (captured {euros(klarna.captured_amount)} − refunded "
                    f"{euros(klarna.refunded_amount)}); the shopper owes {euros(expected)}: goods kept "
                    f"{euros(kept)}, back but not refunded {euros(back)}, captured and awaiting re-shipment "
                    f"{euros(waiting)}, shipping {euros(shipping)}, gift cards {euros(gifts)}, kept by "
                    f"reduced refunds {euros(self.retained)}, goodwill {euros(self.goodwill)}"
                )
            )
        captured_units = [
            sum(c.goods.get(i, 0) for c in self.charges.values()) for i in range(len(self.items))
        ]
        complete = all(captured_units[i] >= item.quantity for i, item in enumerate(self.items) if item.unit)
        if complete and self.gift_card_paid and -gifts != self.gift_card_paid:
            problems.append(
                CaptureViolation(
                    f"every unit is captured, but the captures deduct {euros(-gifts)} of gift cards, "
                    f"which paid {euros(self.gift_card_paid)}: they do not add up to what Klarna authorized"
                )
            )
        shipped_all = all(self.fulfilled[i] >= item.quantity for i, item in enumerate(self.items))
        if (
            complete
            and shipped_all  # free goods still to ship: the order is not complete yet
            and self.spec.shipping
            and not self.shipping_waived
            and not any(c.shipping for c in self.charges.values())
        ):
            problems.append(
                CaptureViolation("every unit has shipped and is captured, but the shipping fee never was")
            )
        for parcel in self.parcels:
            if parcel.state == "covered" and parcel.tracking and parcel.status == "active":
                infos = [
                    info
                    for c in self.w.klarna(self.order).captures
                    if c.capture_id in parcel.covering
                    for info in c.shipping_info
                ]
                if not any(info.get("tracking_number") == parcel.tracking for info in infos):
                    problems.append(
                        CaptureViolation(
                            f"{parcel} re-ships goods already captured, but its tracking "
                            f"{parcel.tracking} was not added to the capture that covers them"
                        )
                    )
        return problems

    # -- text ----------------------------------------------------------------------------

    def _units(self, units: Mapping[int, int]) -> str:
        return ", ".join(f"{q}×{self.items[i].name}" for i, q in units.items() if q) or "nothing"

    def _origins(self, bag: Counter[Origin]) -> str:
        names = {c.capture_id: c.klarna_reference for c in self.charges.values()}
        return (
            ", ".join(f"{n} from {names.get(o, 'uncaptured') if o else 'uncaptured'}" for o, n in bag.items())
            or "none"
        )

    def _log(self, text: str) -> None:
        self.history.append(text)
