"""Refund allocation: turn one platform refund into one provider refund per capture involved.

Rules (each one keeps Klarna's three allocation conditions true):
- Returned units go to the capture that shipped them: the parcel the platform names, else
  the earliest (policy: or latest) capture that still has unrefunded units of that line.
- Each refund's lines use the references exactly as the provider recorded them on that
  capture, and each refund holds lines of one capture only.
- k of the n units left on a captured line are worth ceil(left * k / n) (the same rule that
  cut the line into parcels); the last unit refunds exactly what is left of it.
- "Include shipping" refunds what is left of the shipping line, on the capture holding it.
- When the platform asks for less than the returned goods are worth (a restocking fee,
  a partial refund), the difference is taken off the refund lines in proportion to their
  amounts. When it asks for more, or for an amount with no lines at all (goodwill), the
  surplus is spread over the captures with the most room left first, as ``Goodwill: ...``
  lines (quantity 1, no returned units) on references that still have money left.
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
from plugin.domain.policy import OriginPolicy, Policy
from plugin.domain.references import SHIPPING_TOKEN, capture_reference, parse_line_reference, refund_reference
from plugin.domain.rounding import split_proportionally
from plugin.domain.snapshot import Order, RefundRequest

_NOT_REFUNDABLE_TYPES = {"gift_card", "store_credit", "discount"}


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
) -> list[RefundAction] | Refusal:
    """The refunds for ``request``, booked into ``ledger``; or why none may be sent."""
    try:
        if ledger.misallocated:
            refund_id, reason = ledger.misallocated[0]
            raise _Refused(
                RefusalCode.EARLIER_REFUND_MISALLOCATED,
                f"refund {refund_id} on this order failed allocation ({reason}), so the provider "
                "cannot allocate any later refund to the right invoice; settle it with the shopper "
                "manually",
            )
        picks = _pick_returned_units(request, order, tokens, ledger, policy)
        if request.include_shipping:
            picks += _pick_shipping(ledger)
        _price_picks(picks)
        worth = sum(p.amount for p in picks)
        target = worth if request.amount is None else request.amount
        if target < 0:
            raise _Refused(RefusalCode.OVER_REFUND, "the refund amount is negative")
        if target < worth:
            _reduce(picks, worth - target)
        elif target > worth:
            picks += _goodwill(picks, ledger, target - worth, order.currency)
        actions = _refunds_per_capture(request, picks, provider_order_id, order.currency)
    except _Refused as refused:
        return Refusal("refund", request.id, refused.code, f"Refund not sent: {refused.message}.")
    for action in actions:
        booked = ledger.book(action.reference, action.refunded_amount, map(as_provider_line, action.lines))
        assert booked is not None, "planner built a refund the allocation rule rejects"
    return actions


def _merged_lines(request: RefundRequest) -> dict[tuple[str, str | None], int]:
    merged: dict[tuple[str, str | None], int] = {}
    for item in request.lines:
        key = (item.line_id, item.shipment_id)
        merged[key] = merged.get(key, 0) + item.quantity
    return merged


def _pick_returned_units(
    request: RefundRequest, order: Order, tokens: dict[str, str], ledger: Ledger, policy: Policy
) -> list[_Pick]:
    picks: dict[tuple[int, str], _Pick] = {}
    for (line_id, shipment_id), quantity in _merged_lines(request).items():
        line = order.line(line_id)
        if line is None or quantity <= 0:
            raise _Refused(RefusalCode.UNKNOWN_LINE, f"it returns line {line_id}, which is not on the order")
        holders = [
            (capture, reference)
            for capture in ledger.captures
            for reference in capture.references
            if (parsed := parse_line_reference(reference)) and parsed[0] == tokens[line_id]
        ]
        if shipment_id is not None:
            holders = [h for h in holders if h[0].key == capture_reference(shipment_id)]
        holders.sort(key=lambda h: h[0].parcel, reverse=policy.unknown_origin is OriginPolicy.LATEST_FIRST)
        needed = quantity
        for capture, reference in holders:
            pick = picks.setdefault((capture.parcel, reference), _Pick(capture, reference, 0))
            units = min(needed, pick.state.quantity_left - pick.quantity)
            if units > 0:
                pick.quantity += units
                needed -= units
        if needed:
            where = "in the parcel it came from " if shipment_id is not None else ""
            code = RefusalCode.ORIGIN_EXHAUSTED if shipment_id is not None else RefusalCode.NOT_CAPTURED
            raise _Refused(
                code,
                f"it returns {quantity} × {line.name} but only {quantity - needed} were captured "
                f"{where}and not refunded yet",
            )
    return [p for p in picks.values() if p.quantity > 0]


def _pick_shipping(ledger: Ledger) -> list[_Pick]:
    picks = []
    for capture in ledger.captures:
        for reference, state in capture.references.items():
            parsed = parse_line_reference(reference)
            if parsed and parsed[0] == SHIPPING_TOKEN and state.quantity_left > 0 and state.amount_left > 0:
                picks.append(_Pick(capture, reference, state.quantity_left))
    return picks


def _price_picks(picks: list[_Pick]) -> None:
    for pick in picks:
        state = pick.state
        pick.amount = value_of_next_units(state.amount_left, state.quantity_left, pick.quantity)


def _reduce(picks: list[_Pick], reduction: int) -> None:
    parts = split_proportionally(reduction, [p.amount for p in picks])
    for pick, part in zip(picks, parts, strict=True):
        pick.amount -= part


def _goodwill(picks: list[_Pick], ledger: Ledger, surplus: int, currency: str) -> list[_Pick]:
    """Spread ``surplus`` over captures with room left, the roomiest first."""
    planned: dict[tuple[int, str], tuple[int, int]] = {}
    for pick in picks:
        units, amount = planned.get((pick.capture.parcel, pick.reference), (0, 0))
        planned[(pick.capture.parcel, pick.reference)] = (units + pick.quantity, amount + pick.amount)

    def rooms(capture: CaptureState) -> list[tuple[str, int]]:
        result = []
        for reference, state in capture.references.items():
            units, amount = planned.get((capture.parcel, reference), (0, 0))
            room = state.amount_left - amount
            eligible = state.line.type not in _NOT_REFUNDABLE_TYPES and state.quantity_left - units >= 1
            if eligible and room > 0:
                result.append((reference, room))
        return result

    def capacity(capture: CaptureState) -> int:
        used = sum(p.amount for p in picks if p.capture is capture)
        return max(0, min(capture.left - used, sum(room for _, room in rooms(capture))))

    extra: list[_Pick] = []
    left = surplus
    for capture in sorted(ledger.captures, key=lambda c: (-capacity(c), c.parcel)):
        give = min(left, capacity(capture))
        if give <= 0:
            continue
        room_list = rooms(capture)
        shares = split_proportionally(give, [room for _, room in room_list])
        for (reference, _), share in zip(room_list, shares, strict=True):
            if share > 0:
                extra.append(_Pick(capture, reference, 1, share, goodwill=True))
        left -= give
    if left:
        raise _Refused(
            RefusalCode.OVER_REFUND,
            f"{format_money(surplus, currency)} more than the returned goods is asked for, but the "
            f"captures have only {format_money(surplus - left, currency)} left to refund",
        )
    return extra


def _refunds_per_capture(
    request: RefundRequest, picks: list[_Pick], provider_order_id: str, currency: str
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
        actions.append(
            RefundAction(
                key=key,
                reference=refund_reference(request.id, capture.key, len(involved)),
                idempotency_key=idempotency_key(provider_order_id, key),
                request_id=request.id,
                capture=capture.capture_id or capture.key,
                parcel=capture.parcel,
                refunded_amount=total,
                lines=tuple(_lines(mine)),
                description=_description(request, mine, capture),
            )
        )
    return actions


def _lines(picks: list[_Pick]) -> list[PlannedLine]:
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
        planned = planned_line(
            reference=pick.reference,
            name=f"Goodwill: {line.name}" if pick.goodwill else line.name,
            type=line.type,
            quantity=pick.quantity,
            unit_price=pick.amount if pick.goodwill else line.unit_price,
            amount=pick.amount,
            tax_rate=line.tax_rate,
            tax=tax,
            goodwill=pick.goodwill,
        )
        done[pick.reference] = (done_amount + pick.amount, done_tax + planned.total_tax_amount)
        lines.append(planned)
    return lines


def _description(request: RefundRequest, picks: list[_Pick], capture: CaptureState) -> str:
    if request.reason:
        return request.reason[:255]
    units = sum(p.quantity for p in picks if not p.goodwill)
    kind = f"Return of {units} item{'s' if units != 1 else ''}" if units else "Refund"
    return f"{kind} from parcel {capture.parcel}"[:255]
