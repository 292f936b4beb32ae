"""Capture planning: every shipment not yet captured becomes exactly one capture.

A capture holds exactly the shipped units of each order line. Amounts are cut
cumulatively (see lines.py) against what the provider already has captured for that line,
so all parcels of a line add up exactly to the line total. The shipping fee goes on one
capture (merchant policy: first or last parcel). Gift cards and store credit paid part of
the order outside Klarna, so Klarna authorized only the rest: each capture carries a
negative ``gift_card`` line with its share of them, in proportion to the goods value it
ships (cumulative, so all captures of a fully shipped order add up to what Klarna
authorized).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plugin.domain.actions import (
    CaptureAction,
    PlannedLine,
    Refusal,
    RefusalCode,
    ShippingInfoAction,
    idempotency_key,
)
from plugin.domain.ledger import Ledger
from plugin.domain.lines import as_provider_line, part_tax, planned_line, value_of_next_units
from plugin.domain.origins import Whereabouts
from plugin.domain.policy import Policy, ShippingFeePolicy
from plugin.domain.provider import ProviderCapture, ProviderLine
from plugin.domain.references import (
    GIFT_CARD_TOKEN,
    SHIPPING_TOKEN,
    capture_reference,
    line_reference,
    parse_line_reference,
)
from plugin.domain.rounding import div_round
from plugin.domain.snapshot import LineType, Order, OrderLine, Shipment

MAX_ORDER_LINES = 1000
"""Klarna takes at most 1,000 ``order_lines`` per capture or refund."""


@dataclass
class Captured:
    """How much of one order line (or of shipping, or of gift cards) is already captured."""

    quantity: int = 0
    amount: int = 0
    tax: int = 0


@dataclass
class CaptureBook:
    """Captured totals per token, read from the provider's captures.

    ``goods`` holds the order's line tokens: their totals over all lines are kept as running
    sums, so no parcel needs a pass over the whole order.
    """

    goods: frozenset[str] = frozenset()
    by_token: dict[str, Captured] = field(default_factory=dict)
    goods_amount: int = 0
    goods_quantity: int = 0
    base: CaptureBook | None = None
    """For a trial: the book it was made from; entries are copied from it when first touched."""

    def get(self, token: str) -> Captured:
        entry = self.by_token.get(token)
        if entry is None:
            known = self.base.by_token.get(token) if self.base is not None else None
            entry = Captured(known.quantity, known.amount, known.tax) if known is not None else Captured()
            self.by_token[token] = entry
        return entry

    def add(self, line: ProviderLine | PlannedLine) -> None:
        parsed = parse_line_reference(line.reference)
        if parsed is None:
            return
        entry = self.get(parsed[0])
        entry.quantity += line.quantity
        entry.amount += line.total_amount
        entry.tax += line.total_tax_amount
        if parsed[0] in self.goods:
            self.goods_amount += line.total_amount
            self.goods_quantity += line.quantity

    def trial(self) -> CaptureBook:
        """A copy to try a parcel on; it changes this book only when ``commit``-ed."""
        return CaptureBook(self.goods, {}, self.goods_amount, self.goods_quantity, base=self)

    def commit(self, trial: CaptureBook) -> None:
        assert trial.base is self
        self.by_token.update(trial.by_token)
        self.goods_amount, self.goods_quantity = trial.goods_amount, trial.goods_quantity


def _goods_line(line: OrderLine, token: str, parcel: int, units: int, done: Captured) -> PlannedLine:
    amount = value_of_next_units(line.total_amount - done.amount, line.quantity - done.quantity, units)
    tax = part_tax(line.total_amount, line.total_tax_amount, line.tax_rate, done.amount, done.tax, amount)
    name = f"{line.name} ({line.variant})" if line.variant else line.name
    return planned_line(
        reference=line_reference(token, parcel),
        name=name,
        type=str(line.type),
        quantity=units,
        unit_price=line.unit_price,
        amount=amount,
        tax_rate=line.tax_rate,
        tax=tax,
    )


def _description(order: Order, shipment: Shipment, parcel: int) -> str:
    label = f"order {order.number}" if order.number else "your order"
    tracking = shipment.tracking.number if shipment.tracking and shipment.tracking.number else None
    text = f"Parcel {parcel} of {label}"
    return (f"{text}, tracking {tracking}" if tracking else text)[:255]


def plan_captures(
    order: Order,
    provider_order_id: str,
    captures: tuple[ProviderCapture, ...],
    remaining_authorized: int,
    tokens: dict[str, str],
    ledger: Ledger,
    policy: Policy,
    where: Whereabouts,
) -> tuple[list[CaptureAction], list[ShippingInfoAction], list[Refusal]]:
    """Capture actions for uncaptured shipments, in shipment order; adds them to ``ledger``.

    Units an earlier capture already paid for (``where.covered``) are not captured again; the
    shipment's tracking is added to that capture instead.
    """
    book = CaptureBook(goods=frozenset(tokens[line.id] for line in order.lines))
    for capture in captures:
        for recorded in capture.lines:
            book.add(recorded)
    captured_refs = {c.reference for c in captures if c.reference}
    actions: list[CaptureAction] = []
    refusals: list[Refusal] = []
    if not policy.capture_shipments:
        return actions, [], refusals
    gift_total = sum(g.amount for g in order.gift_cards)
    ordered = (sum(line.total_amount for line in order.lines), sum(line.quantity for line in order.lines))
    uncaptured = [
        s for s in sorted(order.shipments, key=lambda s: (s.created_at, s.id))
        if capture_reference(s.id) not in captured_refs
    ]  # fmt: skip
    infos = _tracking_for_covering_captures(order, captures, ledger, where, provider_order_id)
    completing = _completing_shipment(order, book, tokens, uncaptured, where)
    numbered = _highest_parcel(captures)
    for shipment in uncaptured:
        reference = capture_reference(shipment.id)
        # Next after every capture on record *and* every number a line reference carries: a
        # parcel captured after a later one (refused, then Retry now) never reuses its numbers.
        parcel = max(len(ledger.captures), numbered) + 1
        trial = book.trial()  # becomes the book only if this parcel is captured
        lines: list[PlannedLine] = []
        problem: str | None = None
        shipped = _uncovered_units(shipment, tokens, where)
        if not shipped:
            continue  # all of it was paid for by an earlier capture
        for line_id, units in shipped.items():
            line = order.line(line_id)
            if line is None:
                problem = f"it ships line {line_id}, which is not on the order"
                break
            done = trial.get(tokens[line_id])
            if units <= 0 or done.quantity + units > line.quantity:
                problem = (
                    f"it ships {units} × {line.name} but only {line.quantity - done.quantity} "
                    "are left uncaptured (units captured before and refunded cannot be captured "
                    "again: the authorization for them is used up)"
                )
                break
            lines.append(_goods_line(line, tokens[line_id], parcel, units, done))
        if problem is not None:
            code = RefusalCode.UNKNOWN_LINE if "not on the order" in problem else RefusalCode.OVER_SHIPPED
            refusals.append(Refusal("shipment", shipment.id, code, f"Parcel not captured: {problem}."))
            continue
        for planned in lines:
            trial.add(planned)
        lines.extend(_shipping_line(order, trial, parcel, policy, shipment is completing))
        before_gift = sum(line.total_amount for line in lines)
        units = sum(line.quantity for line in lines if line.type != LineType.SHIPPING_FEE)
        lines.extend(
            _gift_card_line(
                order, trial, ordered, parcel, gift_total, before_gift, units, remaining_authorized
            )
        )
        amount = sum(line.total_amount for line in lines)
        if amount <= 0:
            continue  # nothing for Klarna to capture (e.g. fully paid by gift card)
        if len(lines) > MAX_ORDER_LINES:
            refusals.append(
                Refusal(
                    "shipment",
                    shipment.id,
                    RefusalCode.TOO_MANY_LINES,
                    f"Parcel not captured: it has {len(lines)} lines and Klarna takes at most "
                    f"{MAX_ORDER_LINES} per capture; split it into parcels of at most that many lines.",
                )
            )
            continue
        if amount > remaining_authorized:
            refusals.append(
                Refusal(
                    "shipment",
                    shipment.id,
                    RefusalCode.AUTHORIZATION_EXCEEDED,
                    f"Parcel not captured: it is worth {amount} but only {remaining_authorized} "
                    "of the authorization is left.",
                )
            )
            continue
        remaining_authorized -= amount
        book.commit(trial)
        action = CaptureAction(
            key=f"capture:{shipment.id}",
            reference=reference,
            idempotency_key=idempotency_key(provider_order_id, f"capture:{shipment.id}"),
            shipment_id=shipment.id,
            parcel=parcel,
            captured_amount=amount,
            lines=tuple(lines),
            description=_description(order, shipment, parcel),
            tracking=shipment.tracking,
        )
        actions.append(action)
        ledger.add_capture(as_provider_capture(action))
        numbered = parcel
    return actions, infos, refusals


def _highest_parcel(captures: tuple[ProviderCapture, ...]) -> int:
    """The highest parcel number a line reference on the provider's captures carries."""
    numbers = (parse_line_reference(line.reference) for capture in captures for line in capture.lines)
    return max((parsed[1] for parsed in numbers if parsed is not None), default=0)


def _uncovered_units(shipment: Shipment, tokens: dict[str, str], where: Whereabouts) -> dict[str, int]:
    """Units of each line the shipment holds that no earlier capture paid for."""
    covered = where.covered_units(shipment.id)
    shipped: dict[str, int] = {}
    for item in shipment.lines:
        shipped[item.line_id] = shipped.get(item.line_id, 0) + item.quantity
    for line_id in list(shipped):
        token = tokens.get(line_id)
        take = min(shipped[line_id], covered.get(token, 0)) if token is not None else 0
        if token is not None and take:
            covered[token] -= take
        shipped[line_id] -= take
        if shipped[line_id] == 0:
            del shipped[line_id]
    return shipped


def _tracking_for_covering_captures(
    order: Order,
    captures: tuple[ProviderCapture, ...],
    ledger: Ledger,
    where: Whereabouts,
    provider_order_id: str,
) -> list[ShippingInfoAction]:
    """A re-sent parcel's tracking, added to the capture that paid for its goods."""
    by_key = {c.reference: c for c in captures if c.reference}
    parcels = {c.key: c.parcel for c in ledger.captures}
    infos: list[ShippingInfoAction] = []
    for shipment in sorted(order.shipments, key=lambda s: (s.created_at, s.id)):
        number = shipment.tracking.number if shipment.tracking else None
        if shipment.tracking is None or not number:
            continue
        for key in dict.fromkeys(cover.capture_key for cover in where.covered.get(shipment.id, ())):
            capture = by_key.get(key)
            if capture is None or number in capture.tracking_numbers:
                continue
            action_key = f"shipping-info:{shipment.id}:{capture.capture_id}"
            infos.append(
                ShippingInfoAction(
                    key=action_key,
                    idempotency_key=idempotency_key(provider_order_id, action_key),
                    shipment_id=shipment.id,
                    capture=capture.capture_id,
                    parcel=parcels.get(key, 0),
                    tracking=shipment.tracking,
                )
            )
    return infos


def _completing_shipment(
    order: Order, book: CaptureBook, tokens: dict[str, str], uncaptured: list[Shipment], where: Whereabouts
) -> Shipment | None:
    """The last uncaptured shipment, if with it every unit of the order has shipped.

    Counted as captured units plus the units of uncaptured shipments, so a shipment the
    platform dropped after it was captured (Saleor does, on returns) still counts; so do
    units that came back before their parcel was captured (they shipped, once).
    """
    pending: dict[str, int] = {}
    last: Shipment | None = None
    for shipment in uncaptured:
        for line_id, units in _uncovered_units(shipment, tokens, where).items():
            pending[line_id] = pending.get(line_id, 0) + units
            last = shipment
    complete = all(
        book.get(tokens[line.id]).quantity
        + pending.get(line.id, 0)
        + where.returned_uncaptured.get(tokens[line.id], 0)
        >= line.quantity
        for line in order.lines
    )
    return last if complete else None


def _shipping_line(
    order: Order, book: CaptureBook, parcel: int, policy: Policy, completes_order: bool
) -> list[PlannedLine]:
    shipping = order.shipping
    if shipping is None or shipping.amount == 0 or book.get(SHIPPING_TOKEN).quantity > 0:
        return []
    if order.shipping_refunded:
        return []  # granted back before it was charged: never charged at all
    if policy.shipping_fee is ShippingFeePolicy.LAST_PARCEL and not completes_order:
        return []
    line = planned_line(
        reference=line_reference(SHIPPING_TOKEN, parcel),
        name=shipping.name or "Shipping",
        type=str(LineType.SHIPPING_FEE),
        quantity=1,
        unit_price=shipping.amount,
        amount=shipping.amount,
        tax_rate=shipping.tax_rate,
        tax=shipping.tax_amount,
    )
    book.add(line)
    return [line]


def _gift_card_line(
    order: Order,
    book: CaptureBook,
    ordered: tuple[int, int],
    parcel: int,
    gift_total: int,
    worth: int,
    units: int,
    remaining_authorized: int,
) -> list[PlannedLine]:
    """The parcel's share of gift cards: in proportion to goods value, within two bounds.

    At least what keeps the capture within the authorization left (the gift cards paid the
    rest), and short of the whole parcel while authorization is left, so no parcel is
    worth nothing on the provider (a parcel that cannot be captured cannot record its share).
    Its quantity is the parcel's units, so each return takes back its units' share without
    refunding more gift-card units than the capture holds. ``ordered``: the goods value and
    units of the whole order.
    """
    if gift_total == 0:
        return []
    total, ordered_units = ordered
    done = book.goods_amount  # goods value captured so far
    target = gift_total if done >= total else min(gift_total, div_round(gift_total * done, total))
    applied = -book.get(GIFT_CARD_TOKEN).amount
    gift_left = gift_total - applied
    # Leave a minor unit of authorization for each goods unit still to ship, so a later parcel
    # is never worth nothing on the provider because an earlier one used the authorization up.
    still_to_ship = ordered_units - book.goods_quantity
    reserve = max(0, min(still_to_ship, remaining_authorized - 1))
    share = max(target - applied, worth - (remaining_authorized - reserve))
    if remaining_authorized > 0:
        share = min(share, worth - 1)
    share = min(share, gift_left)
    if share <= 0:
        return []
    store_credit = all(g.store_credit for g in order.gift_cards)
    line = planned_line(
        reference=line_reference(GIFT_CARD_TOKEN, parcel),
        name="Store credit" if store_credit else "Gift card",
        type=str(LineType.STORE_CREDIT if store_credit else LineType.GIFT_CARD),
        quantity=max(units, 1),
        unit_price=-(share // max(units, 1)),
        amount=-share,
        tax_rate=0,
        tax=0,
    )
    book.add(line)
    return [line]


def as_provider_capture(action: CaptureAction) -> ProviderCapture:
    """How a planned capture will look on the provider once made (for planning refunds)."""
    return ProviderCapture(
        capture_id="",
        captured_amount=action.captured_amount,
        reference=action.reference,
        lines=tuple(as_provider_line(line) for line in action.lines),
    )
