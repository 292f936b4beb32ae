"""``plan(order, provider_order, policy)``: what must happen for the provider to match the platform.

Level-triggered: the plan depends only on the two snapshots and the policy, so running it
again after its actions were carried out yields no actions, and a duplicate or late
webhook changes nothing. Actions must be executed in order (a refund may come out of a
capture planned just before it); after a failure, re-plan rather than continue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from plugin.domain.actions import (
    Action,
    Plan,
    RefundAction,
    Refusal,
    RefusalCode,
    ReleaseAction,
    idempotency_key,
)
from plugin.domain.captures import as_provider_capture, plan_captures
from plugin.domain.ledger import Ledger, build_ledger
from plugin.domain.lines import as_provider_line
from plugin.domain.normalize import InvalidOrder, fold_order_discounts, order_problems
from plugin.domain.origins import Whereabouts, whereabouts
from plugin.domain.policy import Policy
from plugin.domain.provider import ProviderCapture, ProviderOrder
from plugin.domain.references import (
    SHIPPING_TOKEN,
    capture_reference,
    line_tokens,
    parse_line_reference,
    refund_parts,
    refund_reference_prefix,
)
from plugin.domain.refunds import allocate_refund
from plugin.domain.snapshot import Order, RefundLine, RefundRequest

_CLOSED = {"CANCELLED", "CLOSED", "EXPIRED"}


def plan(order: Order, provider: ProviderOrder, policy: Policy | None = None) -> Plan:
    policy = policy or Policy()
    problems = order_problems(order)
    if provider.currency.upper() != order.currency.upper():
        problems.append(
            f"the platform order is in {order.currency}, the provider order in {provider.currency}"
        )
    try:
        order = fold_order_discounts(order)
    except InvalidOrder as exc:
        problems.append(str(exc))
    if problems:
        return Plan(refusals=(Refusal("order", order.id, RefusalCode.INVALID_LINE, "; ".join(problems)),))
    tokens = line_tokens(order)
    ledger = _ledger(provider, [], skip=())
    where = whereabouts(order, provider.captures, tokens, _refunded_units(ledger))

    captures, infos, refusals = plan_captures(
        order,
        provider.order_id,
        provider.captures,
        provider.remaining_authorized_amount,
        tokens,
        ledger,
        policy,
        where,
    )
    planned_captures = [as_provider_capture(c) for c in captures]
    actions: list[Action] = [*captures, *infos]
    settled: list[str] = []

    def own_positions(request: RefundRequest) -> list[int]:
        prefix = refund_reference_prefix(request.id)
        return [i for i, r in enumerate(provider.refunds) if (r.reference or "").startswith(prefix)]

    def unfinished(request: RefundRequest) -> bool:
        sent = [provider.refunds[i].reference or "" for i in own_positions(request)]
        return bool(sent) and len(sent) < min(refund_parts(ref) or 0 for ref in sent)

    requests = sorted(order.refunds, key=lambda r: (r.created_at, r.id))
    # A refund can only be left unfinished as the latest thing refunded: the worker
    # finishes a refund before it starts the next one.
    latest = next((r for r in requests if unfinished(r)), None)
    if latest is not None and own_positions(latest)[-1] != len(provider.refunds) - 1:
        refusals.append(_partly_sent(latest))
        latest = None
    if latest is not None and not ledger.misallocated:
        outcome = _finish(
            latest, own_positions(latest), order, provider, planned_captures, tokens, policy, where
        )
        if isinstance(outcome, Refusal):
            refusals.append(outcome)
        else:
            for action in outcome:
                ledger.book(action.reference, action.refunded_amount, map(as_provider_line, action.lines))
            actions.extend(outcome)

    # Until nothing changes: a refund refused for lack of room may fit once a later one has
    # been booked (what it left of its goods), and the plan must be what re-planning gives.
    pending = [request for request in requests if not own_positions(request)]
    while pending:
        refused: list[tuple[RefundRequest, Refusal]] = []
        for request in pending:
            allocated = allocate_refund(request, order, tokens, ledger, policy, provider.order_id, where)
            if isinstance(allocated, Refusal):
                refused.append((request, allocated))
            elif not allocated:
                settled.append(request.id)
            else:
                actions.extend(allocated)
        if len(refused) == len(pending):
            refusals.extend(refusal for _, refusal in refused)
            break
        pending = [request for request, _ in refused]

    if order.cancelled:
        outcome = _refund_cancelled_goods(order, provider, planned_captures, actions, tokens, where, policy)
        if isinstance(outcome, Refusal):
            refusals.append(outcome)
        else:
            for action in outcome:
                ledger.book(action.reference, action.refunded_amount, map(as_provider_line, action.lines))
            actions.extend(outcome)

    release = _release(order, provider, sum(c.captured_amount for c in captures))
    if release is not None:
        actions.append(release)
    return Plan(actions=tuple(actions), refusals=tuple(refusals), settled=tuple(settled))


def _refunded_units(ledger: Ledger) -> dict[tuple[str, str], int]:
    units: dict[tuple[str, str], int] = {}
    for capture in ledger.captures:
        for reference, state in capture.references.items():
            parsed = parse_line_reference(reference)
            if parsed is not None and state.refunded_quantity:
                key = (capture.key, parsed[0])
                units[key] = units.get(key, 0) + state.refunded_quantity
    return units


def cancelled_goods_request_id(order_id: str) -> str:
    """The refund KOM makes itself for a cancelled order's goods that never left."""
    return f"kom-cancelled:{order_id}"


def _is(reference: str | None, request_id: str) -> bool:
    return (reference or "").startswith(refund_reference_prefix(request_id))


def _refund_cancelled_goods(
    order: Order,
    provider: ProviderOrder,
    planned: Sequence[ProviderCapture],
    actions: Sequence[Action],
    tokens: dict[str, str],
    where: Whereabouts,
    policy: Policy,
) -> list[RefundAction] | Refusal:
    """KOM's own refund of a cancelled order's goods that never left, after the merchant's.

    Computed on the ledger without its own refunds but with every other refund, this pass's
    included, so it comes out the same on every pass: what was sent of it is recognised.
    """
    own = cancelled_goods_request_id(order.id)
    sent = [i for i, r in enumerate(provider.refunds) if _is(r.reference, own)]
    scratch = _ledger(provider, planned, skip=sent)
    for action in actions:
        if isinstance(action, RefundAction):
            scratch.book(action.reference, action.refunded_amount, map(as_provider_line, action.lines))
    request = _cancelled_goods(order, tokens, where, scratch, order.refunds)
    if request is None:
        return []
    outcome = allocate_refund(request, order, tokens, scratch, policy, provider.order_id, where)
    if isinstance(outcome, Refusal):
        return outcome
    done = {provider.refunds[i].reference for i in sent}
    if not done <= {action.reference for action in outcome}:
        return _partly_sent(request)
    return [replace(action, automatic=True) for action in outcome if action.reference not in done]


def _cancelled_goods(
    order: Order,
    tokens: dict[str, str],
    where: Whereabouts,
    ledger: Ledger,
    requests: Sequence[RefundRequest],
) -> RefundRequest | None:
    """Every unit of a cancelled parcel's capture that no parcel covers and nobody refunded."""
    line_of = {token: line_id for line_id, token in tokens.items()}
    by_key = {capture_reference(s.id): s.id for s in order.cancelled_shipments}
    lines: list[RefundLine] = []
    shipping = False
    back: dict[str, list[tuple[str, int]]] = {}  # capture key -> (token, units back), in order
    for (key, token), units in where.back.items():
        back.setdefault(key, []).append((token, units))
    for capture in ledger.captures:
        shipment_id = by_key.get(capture.key)
        if shipment_id is None:
            continue
        # Shipping goes back only if no goods reached the shopper (none came back either).
        delivered = bool(order.returned) or any(
            units > where.stranded.get((capture.key, token), 0) for token, units in back.get(capture.key, ())
        )
        refunded: dict[str, int] = {}
        for reference, state in capture.references.items():
            parsed = parse_line_reference(reference)
            if parsed is None:
                continue
            if parsed[0] == SHIPPING_TOKEN and state.amount_left > 0 and not delivered:
                shipping = True
            refunded[parsed[0]] = refunded.get(parsed[0], 0) + state.refunded_quantity
        for token, units in back.get(capture.key, ()):
            left = units - refunded.get(token, 0)
            if token in line_of and left > 0:
                lines.append(RefundLine(line_of[token], left, shipment_id))
    if not lines and not shipping:
        return None
    latest = max((r.created_at for r in requests), default=None)
    return RefundRequest(
        id=cancelled_goods_request_id(order.id),
        created_at=latest or datetime.min,
        lines=tuple(lines),
        include_shipping=shipping,
        reason="Order cancelled: goods that never shipped",
    )


def _release(order: Order, provider: ProviderOrder, capturing: int) -> ReleaseAction | None:
    """A cancelled order frees what is left of the authorization (the whole order, if uncaptured)."""
    left = provider.remaining_authorized_amount - capturing
    if not order.cancelled or left <= 0 or provider.status.upper() in _CLOSED:
        return None
    key = f"release:{order.id}"
    return ReleaseAction(
        key=key,
        idempotency_key=idempotency_key(provider.order_id, key),
        cancel=not provider.captures and capturing == 0,
        amount=left,
    )


def _ledger(provider: ProviderOrder, planned: Sequence[ProviderCapture], skip: Sequence[int]) -> Ledger:
    refunds = [r for i, r in enumerate(provider.refunds) if i not in skip]
    return build_ledger([*provider.captures, *planned], refunds)


def _finish(
    request: RefundRequest,
    positions: list[int],
    order: Order,
    provider: ProviderOrder,
    planned: Sequence[ProviderCapture],
    tokens: dict[str, str],
    policy: Policy,
    where: Whereabouts,
) -> list[RefundAction] | Refusal:
    """The parts of a partly sent refund still missing, recomputed as it was first planned."""
    scratch = _ledger(provider, planned, skip=positions)
    outcome = allocate_refund(request, order, tokens, scratch, policy, provider.order_id, where)
    if isinstance(outcome, Refusal):
        return outcome
    wanted = {action.reference: action for action in outcome}
    sent = [provider.refunds[i] for i in positions]
    if any(
        r.reference not in wanted or wanted[r.reference].refunded_amount != r.refunded_amount for r in sent
    ):
        return _partly_sent(request)
    done = {r.reference for r in sent}
    return [action for action in outcome if action.reference not in done]


def _partly_sent(request: RefundRequest) -> Refusal:
    return Refusal(
        "refund",
        request.id,
        RefusalCode.PARTLY_SENT,
        "Refund only partly sent, and the rest can no longer be computed the same way "
        "(the order changed in between); check the provider order and finish it manually.",
    )
