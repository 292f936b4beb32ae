"""Refund allocation: turn one platform refund into one provider refund per capture involved.

Rules (each one keeps Klarna's three allocation conditions true):
- Returned units go to the capture that shipped them: the parcel the platform names, else
  the parcels whose units came back (or never left, see origins.py) and are not refunded
  yet. Only when that leaves a choice (units back in several parcels, more than refunded
  now) or says nothing (a refund without a return) does the merchant's policy pick the
  earliest (or latest) capture with units left, and the refund's description says so.
- Units that came back before their parcel was captured were never charged: a refund for
  them is refused rather than taken from another parcel's kept units. Units worth nothing
  (a free gift never captured on its own) are left out instead of blocking the return.
- Each refund's lines use the references exactly as the provider recorded them on that
  capture, and each refund holds lines of one capture only.
- k of the n units left on a captured line are worth ceil(left * k / n) (the same rule that
  cut the line into parcels); the last unit refunds exactly what is left of it.
- "Include shipping" refunds what is left of the shipping line, on the capture holding it.
- When the platform asks for less than the returned goods are worth (a restocking fee,
  a partial refund), the difference is taken off the refund lines in proportion to their
  amounts. When it asks for more, or for an amount with no lines at all (goodwill), the
  surplus is spread over the captures with the most room left first, as ``Goodwill: ...``
  lines (quantity 1, no returned units) on references that still have money left and a
  unit no refund has used nor a return is waiting for: across everything refunded on a
  reference, the quantity never exceeds the captured quantity.
- Shipping asked back before it was captured (last-parcel policy) is refused with the
  reason, never turned into goodwill taken from another invoice.
- A grant the platform capped (Saleor caps a grant made before the charge was reported and
  then asks for more) refunds the granted goods' value within what the request allows.
- Every refund's lines add up exactly to its ``refunded_amount``, which never exceeds what
  its capture has left, nor any reference its quantity and amount left.
- When that is impossible (over-refund, goods never captured, an earlier refund on the
  order whose allocation failed) the whole platform refund is refused with a reason;
  no part of it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin.domain.actions import PlannedLine, RefundAction, Refusal, RefusalCode, idempotency_key
from plugin.domain.ledger import CaptureState, Ledger, ReferenceState
from plugin.domain.lines import as_provider_line, part_tax, planned_line, value_of_next_units
from plugin.domain.money import format_money
from plugin.domain.origins import Whereabouts
from plugin.domain.policy import OriginPolicy, Policy
from plugin.domain.references import SHIPPING_TOKEN, capture_reference, parse_line_reference, refund_reference
from plugin.domain.rounding import split_proportionally
from plugin.domain.snapshot import Order, OrderLine, RefundRequest

_NOT_REFUNDABLE_TYPES = {"gift_card", "store_credit", "discount"}
_GIFT_TYPES = {"gift_card", "store_credit"}
_NOT_GOODS = _NOT_REFUNDABLE_TYPES | {"shipping_fee"}
MAX_ORDER_LINES = 1000  # Klarna's limit per refund


@dataclass
class _Pick:
    capture: CaptureState
    reference: str
    quantity: int
    amount: int = 0
    goodwill: bool = False

    @property
    def state(self) -> ReferenceState:
        return self.capture.references[self.reference]


class _Refused(Exception):
    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def allocate_refund(
    request: RefundRequest,
    order: Order,
    tokens: dict[str, str],
    ledger: Ledger,
    policy: Policy,
    provider_order_id: str,
    where: Whereabouts | None = None,
) -> list[RefundAction] | Refusal:
    """The refunds for ``request``, booked into ``ledger``; or why none may be sent.

    An empty list means nothing needs refunding through the provider (goods worth nothing).
    """
    where = where or Whereabouts()
    try:
        if ledger.misallocated:
            refund_id, reason = ledger.misallocated[0]
            raise _Refused(
                RefusalCode.EARLIER_REFUND_MISALLOCATED,
                f"refund {refund_id} on this order failed allocation ({reason}), so the provider "
                "cannot allocate any later refund to the right invoice; settle it with the shopper "
                "manually",
            )
        notes: list[str] = []
        picks = _pick_returned_units(request, order, tokens, ledger, policy, where, notes)
        waived = request.include_shipping and _shipping_uncharged(order, ledger)
        if request.include_shipping and not waived:
            picks += _pick_shipping(order, ledger)
        _price_picks(picks)
        gross = sum(p.amount for p in picks)
        picks += _gift_card_shares(picks)
        worth = sum(p.amount for p in picks)
        target = _target(request, gross, order.currency)
        if waived and order.shipping is not None:
            # Shipping was never charged and now never will be: nothing of it to give back.
            notes.append("shipping was never charged and will not be")
            target = min(target, gross) if request.amount is not None else target
        if worth < gross and target > worth:
            # Gift cards paid part of these goods: that part is not the provider's to refund
            # (anything asked beyond the goods' value still is).
            notes.append(f"{format_money(gross - worth, order.currency)} of it was paid by gift card")
            target = max(worth, target - (gross - worth))
        if target < 0:
            raise _Refused(RefusalCode.OVER_REFUND, "the refund amount is negative")
        if target < worth:
            _reduce(picks, worth - target)
        elif target > worth:
            picks += _goodwill(picks, ledger, target - worth, order.currency, where)
        actions = _refunds_per_capture(request, picks, provider_order_id, order.currency, notes)
    except _Refused as refused:
        return Refusal("refund", request.id, refused.code, f"Refund not sent: {refused.message}.")
    for action in actions:
        booked = ledger.book(action.reference, action.refunded_amount, map(as_provider_line, action.lines))
        assert booked is not None, "planner built a refund the allocation rule rejects"
    return actions


def _target(request: RefundRequest, worth: int, currency: str) -> int:
    """What to refund: the request's amount, or the goods' value where the platform capped a grant."""
    if request.amount is None:
        return worth
    requested = request.requested_amount
    if not request.lines or requested is None or request.amount >= worth or requested <= request.amount:
        return request.amount
    # The platform asks for more than it granted: the grant was capped (Saleor caps a grant
    # made before the charge was reported, to 0.00 even, then asks for the whole charged amount).
    if requested >= worth:
        return worth
    raise _Refused(
        RefusalCode.GRANT_CAPPED,
        f"the platform capped this grant at {format_money(request.amount, currency)} (it was "
        "created before the charges were reported) and asks for "
        f"{format_money(requested, currency)}, less than the {format_money(worth, currency)} the "
        "granted goods are worth; delete the grant and grant it again now that the charges show "
        "on the order",
    )


def _merged_lines(request: RefundRequest) -> dict[tuple[str, str | None], int]:
    merged: dict[tuple[str, str | None], int] = {}
    for item in request.lines:
        key = (item.line_id, item.shipment_id)
        merged[key] = merged.get(key, 0) + item.quantity
    return merged


def _pick_returned_units(
    request: RefundRequest,
    order: Order,
    tokens: dict[str, str],
    ledger: Ledger,
    policy: Policy,
    where: Whereabouts,
    notes: list[str],
) -> list[_Pick]:
    picks: dict[tuple[int, str], _Pick] = {}
    latest_first = policy.unknown_origin is OriginPolicy.LATEST_FIRST
    policy_name = "latest" if latest_first else "earliest"

    def take(holders: list[tuple[CaptureState, str, int]], needed: int) -> int:
        for capture, reference, room in holders:
            pick = picks.setdefault((capture.parcel, reference), _Pick(capture, reference, 0))
            units = min(needed, room, pick.state.quantity_left - pick.quantity)
            if units > 0:
                pick.quantity += units
                needed -= units
        return needed

    for (line_id, shipment_id), quantity in _merged_lines(request).items():
        line = order.line(line_id)
        if line is None or quantity <= 0:
            raise _Refused(RefusalCode.UNKNOWN_LINE, f"it returns line {line_id}, which is not on the order")
        token = tokens[line_id]
        holders = [
            (capture, reference) for capture in ledger.captures for reference in capture.references_of(token)
        ]
        holders.sort(key=lambda h: h[0].parcel, reverse=latest_first)
        needed = quantity
        if shipment_id is not None:
            named = [(c, r, quantity) for c, r in holders if c.key == capture_reference(shipment_id)]
            needed = take(named, needed)
        else:
            back = [(c, r, _back_unrefunded(c, token, where)) for c, r in holders]
            back = [(c, r, n) for c, r, n in back if n > 0]
            # Units the platform recorded as returned before units that never left a cancelled
            # parcel: a return comes from where goods were.
            back.sort(key=lambda b: (b[0].key, token) in where.stranded)
            if len(back) > 1 and sum(n for _, _, n in back) > needed:
                parcels = " and ".join(str(c.parcel) for c, _, _ in sorted(back, key=lambda b: b[0].parcel))
                notes.append(
                    f"{line.name} came back from parcels {parcels}; booked {policy_name} parcel first"
                )
            needed = take(back, needed)
            if needed and _worth_nothing(line, token, ledger, needed):
                needed = 0  # free units never captured on their own: nothing to refund for them
            never = where.returned_uncaptured.get(token, 0)
            if needed and never:
                why = (
                    "were paid by gift card or came back before their parcel was captured"
                    if order.gift_cards
                    else "came back before their parcel was captured"
                )
                raise _Refused(
                    RefusalCode.NEVER_CHARGED,
                    f"{min(needed, never)} × {line.name} {why}, so Klarna never charged the shopper "
                    "for them; grant the refund without them",
                )
            if needed:
                notes.append(f"no return recorded for {line.name}; booked {policy_name} parcel first")
                needed = take([(c, r, quantity) for c, r in holders], needed)
        if needed:
            where_text = "in the parcel it came from " if shipment_id is not None else ""
            code = RefusalCode.ORIGIN_EXHAUSTED if shipment_id is not None else RefusalCode.NOT_CAPTURED
            raise _Refused(
                code,
                f"it returns {quantity} × {line.name} but only {quantity - needed} were captured "
                f"{where_text}and not refunded yet",
            )
    return [p for p in picks.values() if p.quantity > 0]


def _back_unrefunded(capture: CaptureState, token: str, where: Whereabouts) -> int:
    """Units of ``token`` that came back from (or never left with) ``capture`` and are not refunded."""
    refunded = sum(
        capture.references[reference].refunded_quantity for reference in capture.references_of(token)
    )
    return where.back_units(capture.key, token) - refunded


def _worth_nothing(line: OrderLine, token: str, ledger: Ledger, units: int) -> bool:
    """Whether ``units`` more of the line, beyond what was captured, are worth nothing."""
    if line.total_amount == 0:
        return True
    quantity = amount = 0
    for capture in ledger.captures:
        for reference in capture.references_of(token):
            state = capture.references[reference]
            quantity += state.line.quantity
            amount += state.line.total_amount
    left = line.quantity - quantity
    return left >= units and value_of_next_units(line.total_amount - amount, left, units) == 0


def _shipping_uncharged(order: Order, ledger: Ledger) -> bool:
    """Shipping granted back before any capture charged it (and so it never will be)."""
    captured = any(
        (parsed := parse_line_reference(reference)) and parsed[0] == SHIPPING_TOKEN
        for capture in ledger.captures
        for reference in capture.references
    )
    return order.shipping_refunded and not captured


def _pick_shipping(order: Order, ledger: Ledger) -> list[_Pick]:
    captured = any(
        (parsed := parse_line_reference(reference)) and parsed[0] == SHIPPING_TOKEN
        for capture in ledger.captures
        for reference in capture.references
    )
    if order.shipping is not None and order.shipping.amount > 0 and not captured:
        raise _Refused(
            RefusalCode.SHIPPING_NOT_CAPTURED,
            f"it refunds shipping ({format_money(order.shipping.amount, order.currency)}), which is "
            "charged with the parcel that completes the order and has not been charged yet; grant "
            "the refund without shipping (KOM then never charges shipping if nothing more ships), "
            "or refund shipping after the last parcel",
        )
    picks = []
    for capture in ledger.captures:
        for reference, state in capture.references.items():
            parsed = parse_line_reference(reference)
            if parsed and parsed[0] == SHIPPING_TOKEN and state.quantity_left > 0 and state.amount_left > 0:
                picks.append(_Pick(capture, reference, state.quantity_left))
    return picks


def _price_picks(picks: list[_Pick]) -> None:
    """Returned units are worth what they were captured for, within what is left of the line.

    Only the last units take exactly what is left, so money an earlier goodwill or reduced
    refund took off the line comes off them rather than off every unit.
    """
    for pick in picks:
        state = pick.state
        line = state.line
        if pick.quantity >= state.quantity_left:
            pick.amount = state.amount_left
            continue
        done = value_of_next_units(line.total_amount, line.quantity, state.refunded_quantity)
        nominal = value_of_next_units(
            line.total_amount - done, line.quantity - state.refunded_quantity, pick.quantity
        )
        pick.amount = max(0, min(nominal, state.amount_left))


def _reduce(picks: list[_Pick], reduction: int) -> None:
    """Take ``reduction`` off in proportion to what each capture refunds, then to its lines.

    Per capture first, so a capture whose goods its gift-card share cancels out gives nothing.
    """
    captures = list({id(p.capture): p.capture for p in picks}.values())
    nets = [max(0, sum(p.amount for p in picks if p.capture is c)) for c in captures]
    if reduction <= 0 or not any(nets):
        return
    for capture, part in zip(captures, split_proportionally(reduction, nets), strict=True):
        goods = [p for p in picks if p.capture is capture and p.amount > 0]
        if part <= 0 or not goods:
            continue
        for pick, cut in zip(goods, split_proportionally(part, [p.amount for p in goods]), strict=True):
            pick.amount -= cut


def _gift_card_shares(picks: list[_Pick]) -> list[_Pick]:
    """Each capture's gift-card line refunded in proportion to the goods refunded from it.

    A capture carries a negative gift-card line for the share gift cards paid, so refunding
    its goods at full value would exceed what it has left; the share goes back with them.
    """
    extra: list[_Pick] = []
    for capture in {id(p.capture): p.capture for p in picks}.values():
        gift = [
            (reference, state)
            for reference, state in capture.references.items()
            if state.line.type in _GIFT_TYPES and state.amount_left < 0
        ]
        if not gift:
            continue
        # The share was cut in proportion to the goods (not shipping), so it goes back with them.
        goods_left = sum(
            state.amount_left
            for state in capture.references.values()
            if state.line.type not in _NOT_GOODS and state.amount_left > 0
        )
        mine = [
            p
            for p in picks
            if p.capture is capture and not p.goodwill and p.state.line.type not in _NOT_GOODS
        ]
        picked = sum(p.amount for p in mine)
        units = sum(p.quantity for p in mine)
        if not mine or goods_left <= 0:
            continue
        for reference, state in gift:
            share = -state.amount_left if picked >= goods_left else -state.amount_left * picked // goods_left
            if share > 0:
                quantity = max(1, min(units, state.quantity_left))
                extra.append(_Pick(capture, reference, quantity, -share))
    return extra


def _goodwill(
    picks: list[_Pick], ledger: Ledger, surplus: int, currency: str, where: Whereabouts
) -> list[_Pick]:
    """Spread ``surplus`` over captures with room left, the roomiest first."""
    planned: dict[tuple[int, str], tuple[int, int]] = {}
    for pick in picks:
        units, amount = planned.get((pick.capture.parcel, pick.reference), (0, 0))
        planned[(pick.capture.parcel, pick.reference)] = (units + pick.quantity, amount + pick.amount)

    def spare_units(capture: CaptureState, reference: str, state: ReferenceState) -> int:
        # A unit no refund used yet, and not one a return is waiting to refund.
        token = capture.token_of(reference)
        # Nothing is waiting where nothing came back (refunded quantities are never negative).
        back = token is not None and where.back_units(capture.key, token) > 0
        waiting = max(0, _back_unrefunded(capture, token, where)) if back and token is not None else 0
        units, _ = planned.get((capture.parcel, reference), (0, 0))
        return state.units_unused - units - waiting

    def rooms(capture: CaptureState) -> list[tuple[str, int]]:
        result = []
        for reference, state in capture.references.items():
            _, amount = planned.get((capture.parcel, reference), (0, 0))
            room = state.amount_left - amount
            refundable = state.line.type not in _NOT_REFUNDABLE_TYPES
            if refundable and room > 0 and spare_units(capture, reference, state) >= 1:
                result.append((reference, room))
        return result

    def capacity(capture: CaptureState, room: list[tuple[str, int]]) -> int:
        used = sum(p.amount for p in [*picks, *extra] if p.capture is capture)
        return max(0, min(capture.left - used, sum(r for _, r in room)))

    extra: list[_Pick] = []
    left = surplus
    # First what is left of goods that came back and were refunded for less (a restocking
    # fee refunded after all): on the invoice those goods came from.
    for capture in ledger.captures:
        room_left = capture.left - sum(p.amount for p in picks if p.capture is capture)
        for reference, state in capture.references.items():
            if state.line.type in _NOT_REFUNDABLE_TYPES or not state.refunded_quantity:
                continue
            value = state.line.total_amount * state.refunded_quantity // state.line.quantity
            _, amount = planned.get((capture.parcel, reference), (0, 0))
            share = min(left, room_left, value - state.refunded_amount - amount)
            if share > 0:
                extra.append(_Pick(capture, reference, 1, share, goodwill=True))
                planned[(capture.parcel, reference)] = (1, amount + share)
                left -= share
                room_left -= share
    # From here on what a capture has room for changes only when it is given to, once: each
    # capture's rooms and capacity are worked out once (not once per comparison).
    room_of = {capture.parcel: rooms(capture) for capture in ledger.captures}
    capacity_of = {capture.parcel: capacity(capture, room_of[capture.parcel]) for capture in ledger.captures}
    for capture in sorted(ledger.captures, key=lambda c: (-capacity_of[c.parcel], c.parcel)):
        if left <= 0:
            break
        give = min(left, capacity_of[capture.parcel])
        if give <= 0:
            continue
        # Fill the roomiest lines first: each goodwill line uses up a unit of its reference.
        remaining = give
        for reference, room in sorted(room_of[capture.parcel], key=lambda r: -r[1]):
            share = min(room, remaining)
            if share > 0:
                extra.append(_Pick(capture, reference, 1, share, goodwill=True))
                remaining -= share
        left -= give
    if left:
        raise _Refused(
            RefusalCode.OVER_REFUND,
            f"{format_money(surplus, currency)} more than the returned goods is asked for, but the "
            f"captures have only {format_money(surplus - left, currency)} left to refund on lines "
            "with a unit to spare",
        )
    return extra


def _refunds_per_capture(
    request: RefundRequest, picks: list[_Pick], provider_order_id: str, currency: str, notes: list[str]
) -> list[RefundAction]:
    actions = []
    involved = sorted({id(p.capture): p.capture for p in picks}.values(), key=lambda c: c.parcel)
    involved = [c for c in involved if sum(p.amount for p in picks if p.capture is c) > 0]
    for capture in involved:
        mine = sorted((p for p in picks if p.capture is capture), key=lambda p: p.goodwill)
        total = sum(p.amount for p in mine)
        if total > capture.left:
            raise _Refused(
                RefusalCode.CAPTURE_EXCEEDED,
                f"{format_money(total, currency)} would be refunded out of parcel {capture.parcel}, "
                f"which has only {format_money(capture.left, currency)} left (the rest of it was paid "
                "outside the provider or already refunded)",
            )
        key = f"refund:{request.id}:{capture.key}"
        lines = _lines(mine, currency)
        if len(lines) > MAX_ORDER_LINES:
            raise _Refused(
                RefusalCode.TOO_MANY_LINES,
                f"{len(lines)} lines would be refunded out of parcel {capture.parcel} and the provider "
                f"takes at most {MAX_ORDER_LINES} per refund; split the refund",
            )
        actions.append(
            RefundAction(
                key=key,
                reference=refund_reference(request.id, capture.key, len(involved)),
                idempotency_key=idempotency_key(provider_order_id, key),
                request_id=request.id,
                capture=capture.capture_id or capture.key,
                parcel=capture.parcel,
                refunded_amount=total,
                lines=tuple(lines),
                description=_description(request, mine, capture, notes),
            )
        )
    return actions


def _lines(picks: list[_Pick], currency: str) -> list[PlannedLine]:
    done: dict[str, tuple[int, int]] = {}
    lines = []
    for pick in picks:
        if pick.amount == 0 and pick.goodwill:
            continue
        state = pick.state
        line = state.line
        done_amount, done_tax = done.get(pick.reference, (state.refunded_amount, state.refunded_tax))
        tax = part_tax(
            line.total_amount, line.total_tax_amount, line.tax_rate, done_amount, done_tax, pick.amount
        )
        # Returned units go back as the units they are, even when a goodwill line used one of
        # the line's units before (refusing would block an ordinary return; see lifecycle.md).
        quantity = pick.quantity
        unit_price = line.unit_price
        if pick.goodwill:
            unit_price = pick.amount
        elif line.type in _GIFT_TYPES:
            unit_price = -(-pick.amount // quantity)  # its share per unit, the rest as discount
        elif quantity * unit_price < pick.amount:
            unit_price = -(-pick.amount // quantity)
        planned = planned_line(
            reference=pick.reference,
            name=f"Goodwill: {line.name}" if pick.goodwill else line.name,
            type=line.type,
            quantity=quantity,
            unit_price=unit_price,
            amount=pick.amount,
            tax_rate=line.tax_rate,
            tax=tax,
            goodwill=pick.goodwill,
        )
        done[pick.reference] = (done_amount + pick.amount, done_tax + planned.total_tax_amount)
        lines.append(planned)
    return lines


def _description(request: RefundRequest, picks: list[_Pick], capture: CaptureState, notes: list[str]) -> str:
    """The merchant's reason if given, else what the refund is; plus how its origin was chosen."""
    units = sum(p.quantity for p in picks if not p.goodwill)
    kind = f"Return of {units} item{'s' if units != 1 else ''}" if units else "Refund"
    text = request.reason or f"{kind} from parcel {capture.parcel}"
    if notes:
        text = f"{text} ({'; '.join(notes)})"
    return text[:255]
