"""A tiny provider simulator for domain tests, and an independent allocation checker.

The checker re-states Klarna's three allocation conditions from the seed article in its
own words (it does not use plugin.domain.ledger), so the planner is checked against the
rule rather than against itself.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from plugin.domain.actions import Action, CaptureAction, RefundAction, ReleaseAction, ShippingInfoAction
from plugin.domain.lines import as_provider_line
from plugin.domain.provider import ProviderCapture, ProviderOrder, ProviderRefund
from plugin.domain.snapshot import Order

_ids = itertools.count(1)


def authorized(order: Order, order_id: str = "kl-1") -> ProviderOrder:
    """The provider order as Klarna authorized it at checkout."""
    amount = sum(line.total_amount for line in order.lines) - sum(d.amount for d in order.discounts)
    amount += order.shipping.amount if order.shipping else 0
    amount -= sum(g.amount for g in order.gift_cards)
    return ProviderOrder(
        order_id=order_id,
        status="AUTHORIZED",
        currency=order.currency,
        order_amount=amount,
        captured_amount=0,
        refunded_amount=0,
        remaining_authorized_amount=amount,
    )


def apply(provider: ProviderOrder, action: Action) -> ProviderOrder:
    if isinstance(action, CaptureAction):
        assert action.captured_amount <= provider.remaining_authorized_amount
        capture = ProviderCapture(
            capture_id=f"cap-{next(_ids)}",
            captured_amount=action.captured_amount,
            reference=action.reference,
            lines=tuple(as_provider_line(line) for line in action.lines),
        )
        return replace(
            provider,
            captures=(*provider.captures, capture),
            captured_amount=provider.captured_amount + action.captured_amount,
            remaining_authorized_amount=provider.remaining_authorized_amount - action.captured_amount,
        )
    if isinstance(action, ShippingInfoAction):
        number = action.tracking.number or ""
        captures = tuple(
            replace(c, tracking_numbers=(*c.tracking_numbers, number))
            if c.capture_id == action.capture
            else c
            for c in provider.captures
        )
        assert captures != provider.captures, "shipping info for an unknown capture"
        return replace(provider, captures=captures)
    if isinstance(action, ReleaseAction):
        assert provider.remaining_authorized_amount == action.amount
        return replace(
            provider, status="CANCELLED" if action.cancel else provider.status, remaining_authorized_amount=0
        )
    assert isinstance(action, RefundAction)
    assert provider.refunded_amount + action.refunded_amount <= provider.captured_amount, "over refund"
    refund = ProviderRefund(
        refund_id=f"ref-{next(_ids)}",
        refunded_amount=action.refunded_amount,
        reference=action.reference,
        lines=tuple(as_provider_line(line) for line in action.lines),
    )
    return replace(
        provider,
        refunds=(*provider.refunds, refund),
        refunded_amount=provider.refunded_amount + action.refunded_amount,
    )


def apply_all(provider: ProviderOrder, actions: tuple[Action, ...]) -> ProviderOrder:
    for action in actions:
        provider = apply(provider, action)
    return provider


def allocation(provider: ProviderOrder) -> list[str | None]:
    """For each refund, the capture id it is allocated to, or None when allocation fails."""
    result: list[str | None] = []
    refunded: dict[str, int] = {}
    failed = False
    for refund in provider.refunds:
        target = None
        if not failed and refund.lines:
            refs = {line.reference for line in refund.lines}
            owners = [c for c in provider.captures if refs <= {line.reference for line in c.lines}]
            adds_up = sum(line.total_amount for line in refund.lines) == refund.refunded_amount
            if len(owners) == 1 and adds_up:
                capture = owners[0]
                left = capture.captured_amount - refunded.get(capture.capture_id, 0)
                if refund.refunded_amount <= left:
                    target = capture.capture_id
        if target is None:
            failed = True
        else:
            refunded[target] = refunded.get(target, 0) + refund.refunded_amount
        result.append(target)
    return result


def reference_usage(provider: ProviderOrder) -> dict[tuple[str, str], tuple[int, int]]:
    """(capture id, reference) -> (returned units, refunded amount), from allocated refunds."""
    usage: dict[tuple[str, str], tuple[int, int]] = {}
    for refund, capture_id in zip(provider.refunds, allocation(provider), strict=True):
        assert capture_id is not None
        for line in refund.lines:
            assert line.reference is not None
            units, amount = usage.get((capture_id, line.reference), (0, 0))
            usage[(capture_id, line.reference)] = (
                units + (0 if line.goodwill else line.quantity),
                amount + line.total_amount,
            )
    return usage
