"""The provider's order after a pass's writes, without reading it again.

Made from the read before acting (one GET order per pass) and the provider's answers to the
writes (the capture and refund ids of its 201s): what was sent is what the provider holds.
What only a read shows stays unknown (a new capture's ``klarna_reference``, so messages name
that invoice by its capture id). The records stay the truth for amounts; this only feeds
the invoice names of messages and the authorization clock.
"""

from __future__ import annotations

from dataclasses import replace

from plugin.domain.actions import CaptureAction, PlannedLine, RefundAction, ReleaseAction, ShippingInfoAction
from plugin.domain.provider import ProviderCapture, ProviderLine, ProviderOrder, ProviderRefund
from plugin.service.sync import SyncResult


def after_pass(state: ProviderOrder, result: SyncResult) -> ProviderOrder:
    captures = list(state.captures)
    refunds = list(state.refunds)
    captured = refunded = 0
    remaining = state.remaining_authorized_amount
    status = state.status
    by_reference = {c.reference: c.capture_id for c in captures if c.reference}
    for done in result.done:
        action = done.action
        if isinstance(action, CaptureAction):
            numbers = (action.tracking.number,) if action.tracking and action.tracking.number else ()
            lines = tuple(_line(line) for line in action.lines)
            captures.append(
                ProviderCapture(done.provider_id, action.captured_amount, lines, action.reference,
                                refunded_amount=0, tracking_numbers=numbers)
            )  # fmt: skip
            by_reference[action.reference] = done.provider_id
            captured += action.captured_amount
            remaining -= action.captured_amount
            status = "CAPTURED" if remaining <= 0 else "PART_CAPTURED"
        elif isinstance(action, RefundAction):
            lines = tuple(_line(line) for line in action.lines)
            refunds.append(ProviderRefund(done.provider_id, action.refunded_amount, lines, action.reference))
            refunded += action.refunded_amount
            capture_id = by_reference.get(action.capture, action.capture)
            captures = [
                replace(c, refunded_amount=(c.refunded_amount or 0) + action.refunded_amount)
                if c.capture_id == capture_id and c.refunded_amount is not None
                else c
                for c in captures
            ]
        elif isinstance(action, ShippingInfoAction) and action.tracking.number:
            captures = [
                replace(c, tracking_numbers=(*c.tracking_numbers, action.tracking.number))
                if c.capture_id == action.capture
                else c
                for c in captures
            ]
        elif isinstance(action, ReleaseAction):
            remaining = 0
            status = "CANCELLED" if action.cancel else status
    return replace(
        state,
        status=status,
        captured_amount=state.captured_amount + captured,
        refunded_amount=state.refunded_amount + refunded,
        remaining_authorized_amount=max(remaining, 0),
        captures=tuple(captures),
        refunds=tuple(refunds),
    )


def _line(line: PlannedLine) -> ProviderLine:
    return ProviderLine(
        line.reference, line.name, line.type, line.quantity, line.unit_price, line.total_amount,
        line.total_discount_amount, line.tax_rate, line.total_tax_amount, line.goodwill,
    )  # fmt: skip
