"""One order, platform against provider: what does not match, and what the merchant can do.

Pure: the platform's order (with the refund requests KOM recorded and has not finished),
the provider's order and the channel's settings in, ``FindingRecord``s out. The planner
says what is pending (an action is a parcel not captured or a refund not sent; a refusal is
something KOM will not do); the ledger says which refunds broke allocation; everything the
provider holds without KOM's ``kom:s:`` / ``kom:r:`` references was made elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from plugin.domain.actions import CaptureAction, RefundAction, RefusalCode, ReleaseAction, ShippingInfoAction
from plugin.domain.ledger import build_ledger
from plugin.domain.money import format_money
from plugin.domain.plan import plan
from plugin.domain.provider import ProviderCapture, ProviderOrder
from plugin.domain.references import REFUND_PREFIX
from plugin.domain.snapshot import Order
from plugin.service.adoption import Adoption, adopt_foreign_captures, unshipped_units
from plugin.service.authorization import Decision, read_clock
from plugin.service.records import ChannelSettings, FindingRecord

SOURCE = "reconcile"


class Kind(StrEnum):
    SHIPMENT_NOT_CAPTURED = "shipment_not_captured"
    REFUND_NOT_SENT = "refund_not_sent"
    TRACKING_NOT_SENT = "tracking_not_sent"
    RELEASE_PENDING = "release_pending"
    REFUSED = "refused"
    CAPTURE_ELSEWHERE = "capture_elsewhere"
    REFUND_ELSEWHERE = "refund_elsewhere"
    REFUND_MISALLOCATED = "refund_misallocated"
    CHARGE_DRIFT = "charge_drift"
    AUTHORIZATION_DRIFT = "authorization_drift"
    REFUNDED_DRIFT = "refunded_drift"
    AUTHORIZATION_LEFT_OPEN = "authorization_left_open"
    AUTHORIZATION_EXPIRING = "authorization_expiring"
    AUTHORIZATION_EXPIRED = "authorization_expired"
    UNREADABLE = "unreadable"
    NOT_CONFIGURED = "not_configured"


_RETRY = "Retry the order (Retry now on KOM's page, or `kom worker --once`)"
_REFUSAL_ACTIONS = {
    RefusalCode.OVER_REFUND: "Lower the refund in Saleor to what the invoices have left, or refund the rest "
    "another way.",
    RefusalCode.NOT_CAPTURED: "Fulfil (ship) the goods first so KOM captures them, or refund them another "
    "way.",
    RefusalCode.ORIGIN_EXHAUSTED: "Check which parcel the goods came back from; that parcel's invoice has no "
    "such goods left to refund.",
    RefusalCode.CAPTURE_EXCEEDED: "Refund the part paid outside the provider (gift card, store credit) "
    "another way.",
    RefusalCode.EARLIER_REFUND_MISALLOCATED: "Settle this order's refunds in the provider's portal.",
    RefusalCode.PARTLY_SENT: "Finish the refund in the provider's portal with the capture's line references.",
}
_REFUSAL_DEFAULT = "Correct the order in Saleor, then retry the order."


@dataclass(frozen=True)
class Context:
    """What the comparison knows besides the two orders."""

    settings: ChannelSettings
    now: datetime
    window: timedelta
    charged: int | None = None
    """What the platform's payment shows charged (captured minus refunded), if it says."""
    refunds_pending: bool = False
    """The platform holds refund requests KOM has not finished (they lower ``charged`` already)."""


def compare(order: Order, provider: ProviderOrder, context: Context) -> list[FindingRecord]:
    """Every mismatch between the platform's and the provider's order, with a suggested action."""
    adoption = adopt_foreign_captures(order, provider)
    found = _Found(order)
    _pending(found, adoption, provider, context)
    _foreign_captures(found, adoption, provider)
    _refunds(found, provider)
    _amounts(found, order, provider, context)
    _clock(found, order, provider, context)
    return found.items


class _Found:
    def __init__(self, order: Order) -> None:
        self.order = order
        self.items: list[FindingRecord] = []

    def add(self, kind: Kind, detail: str, action: str, subject: str | None = None) -> None:
        self.items.append(
            FindingRecord(
                platform_order_id=self.order.id,
                kind=kind.value,
                detail=detail,
                suggested_action=action,
                source=SOURCE,
                order_number=self.order.number,
                subject=subject,
            )
        )


def _pending(found: _Found, adoption: Adoption, provider: ProviderOrder, context: Context) -> None:
    """What the planner would do now (the worker has not done it) and what it refuses."""
    money = _money(provider)
    manual = context.settings.capture_mode != "on_fulfillment"
    result = plan(adoption.order, provider, context.settings.policy(charge_requested=True))
    refunds: dict[str, list[RefundAction]] = {}
    for action in result.actions:
        if isinstance(action, CaptureAction):
            shipment = next(s for s in adoption.order.shipments if s.id == action.shipment_id)
            units = sum(item.quantity for item in shipment.lines)
            label = f"fulfillment #{shipment.number}" if shipment.number else f"shipment {shipment.id}"
            found.add(
                Kind.SHIPMENT_NOT_CAPTURED,
                f"Parcel {action.parcel} ({label}, {_items(units)}) shipped but is not captured: "
                f"{money(action.captured_amount)} not invoiced.",
                "Capture mode is manual: use Saleor's Capture action on the payment."
                if manual
                else f"{_RETRY}: KOM captures it as its own invoice.",
                subject=shipment.id,
            )
        elif isinstance(action, RefundAction):
            refunds.setdefault(action.request_id, []).append(action)
        elif isinstance(action, ShippingInfoAction):
            found.add(
                Kind.TRACKING_NOT_SENT,
                f"Tracking {action.tracking.number or ''} of shipment {action.shipment_id} is not on "
                f"invoice {action.parcel} yet.",
                f"{_RETRY}: KOM adds it to the capture.",
                subject=action.shipment_id,
            )
        elif isinstance(action, ReleaseAction):
            found.add(
                Kind.RELEASE_PENDING,
                f"The order will ship nothing more, but {money(action.amount)} is still authorized.",
                f"{_RETRY}: KOM {'cancels the provider order' if action.cancel else 'releases the rest'}.",
            )
    for request_id, parts in refunds.items():
        invoices = ", ".join(str(a.parcel) for a in parts)
        total = sum(a.refunded_amount for a in parts)
        found.add(
            Kind.REFUND_NOT_SENT,
            f"Refund {request_id} of {money(total)} is recorded but not sent "
            f"({len(parts)} refund{'s' if len(parts) > 1 else ''}, invoice{'s' if len(parts) > 1 else ''} "
            f"{invoices}).",
            f"{_RETRY}: KOM sends it with each invoice's line references.",
            subject=request_id,
        )
    for refusal in result.refusals:
        found.add(
            Kind.REFUSED,
            f"{refusal.subject.capitalize()} {refusal.subject_id}: {refusal.message}",
            _REFUSAL_ACTIONS.get(refusal.code, _REFUSAL_DEFAULT),
            subject=refusal.subject_id,
        )


def _foreign_captures(found: _Found, adoption: Adoption, provider: ProviderOrder) -> None:
    money = _money(provider)
    for adopted in adoption.adopted:
        capture, shipment = adopted.capture, adopted.shipment
        label = f"fulfillment #{shipment.number}" if shipment.number else f"shipment {shipment.id}"
        found.add(
            Kind.CAPTURE_ELSEWHERE,
            f"Capture {_name(capture)} of {money(capture.captured_amount)} was made outside KOM. It holds "
            f"exactly the goods of {label}, so KOM adopted it: that parcel is not captured again, and "
            f"its refunds use the capture's own references ({_references(capture)}).",
            "Nothing at the provider. If Saleor does not show this charge, record it on the payment.",
            subject=capture.capture_id,
        )
    for unmatched in adoption.unmatched:
        capture = unmatched.capture
        if unmatched.goods:
            goods = ", ".join(
                f"{units} × {line.name if (line := found.order.line(line_id)) else line_id}"
                for line_id, units in unmatched.goods.items()
            )
            detail = (
                f"Capture {_name(capture)} of {money(capture.captured_amount)} was made outside KOM. It "
                f"holds {goods}, which matches no parcel waiting to be captured; KOM counts those units "
                "as captured."
            )
            action = (
                "Check it in the provider's portal; refund it there if it duplicates a parcel KOM captured."
            )
        else:
            detail = (
                f"Capture {_name(capture)} of {money(capture.captured_amount)} was made outside KOM without "
                "line references KOM can read: KOM cannot tell which goods it holds, and refunds of them "
                "cannot be allocated to it."
            )
            action = (
                "Settle refunds of these goods in the provider's portal; KOM's next captures may exceed "
                "what is left of the authorization."
            )
        found.add(Kind.CAPTURE_ELSEWHERE, detail, action, subject=capture.capture_id)


def _refunds(found: _Found, provider: ProviderOrder) -> None:
    """Refunds made elsewhere, and the first refund whose allocation failed."""
    money = _money(provider)
    ledger = build_ledger(provider.captures, ())
    invoices = {c.capture_id: _name(c) for c in provider.captures}
    flagged = False
    for refund in provider.refunds:
        key = refund.refund_id or (refund.reference or "?")
        booked = ledger.book(key, refund.refunded_amount, refund.lines)
        elsewhere = not (refund.reference or "").startswith(REFUND_PREFIX)
        if booked is None and not flagged:
            flagged = True  # only the first failure is news: every later refund fails after it
            reason = dict(ledger.misallocated)[key]
            who = "made outside KOM " if elsewhere else ""
            found.add(
                Kind.REFUND_MISALLOCATED,
                f"Refund {key} of {money(refund.refunded_amount)} {who}could not be allocated to an invoice "
                f"({reason}). The provider then allocates no later refund of this order, so invoices may "
                "show more open than the shopper owes.",
                "Settle this order's invoices in the provider's portal; KOM refuses further refunds on it.",
                subject=key,
            )
        elif booked is not None and elsewhere:
            found.add(
                Kind.REFUND_ELSEWHERE,
                f"Refund {key} of {money(refund.refunded_amount)} was made outside KOM; it was booked on "
                f"invoice {invoices.get(booked.capture_id or '', booked.parcel)}.",
                "Record it in Saleor as a manual refund, so Saleor and the provider agree.",
                subject=key,
            )
    if ledger.misallocated:
        return  # the provider's per-capture figures cannot be compared with a broken allocation
    for capture, state in zip(provider.captures, ledger.captures, strict=True):
        if capture.refunded_amount is not None and capture.refunded_amount != state.refunded:
            found.add(
                Kind.REFUNDED_DRIFT,
                f"The provider shows {money(capture.refunded_amount)} refunded on invoice {_name(capture)}, "
                f"its refunds' lines add up to {money(state.refunded)}.",
                "Check the invoice in the provider's portal.",
                subject=capture.capture_id,
            )


def _amounts(found: _Found, order: Order, provider: ProviderOrder, context: Context) -> None:
    _charged(found, provider, context)
    if provider.status == "CANCELLED" or order.cancelled:
        return  # nothing more ships: what is left is the planner's to release (release_pending)
    _authorized(found, order, provider)
    _left_open(found, order, provider)


def _authorized(found: _Found, order: Order, provider: ProviderOrder) -> None:
    money = _money(provider)
    worth = (
        sum(line.total_amount for line in order.lines)
        + (order.shipping.amount if order.shipping else 0)
        - sum(d.amount for d in order.discounts)
        - sum(g.amount for g in order.gift_cards)
    )
    if worth > provider.order_amount:
        found.add(
            Kind.AUTHORIZATION_DRIFT,
            f"The order is worth {money(worth)} in Saleor, the provider authorized "
            f"{money(provider.order_amount)}: the last {money(worth - provider.order_amount)} cannot be "
            "captured.",
            "Ask the shopper to pay the difference another way, or reduce the order in Saleor.",
        )
    elif worth < provider.order_amount:
        found.add(
            Kind.AUTHORIZATION_DRIFT,
            f"The provider authorized {money(provider.order_amount)}, the order is worth {money(worth)} in "
            f"Saleor: {money(provider.order_amount - worth)} more than will ever be captured.",
            "Once everything has shipped, release the rest: cancel the remaining payment in Saleor.",
        )


def _charged(found: _Found, provider: ProviderOrder, context: Context) -> None:
    money = _money(provider)
    expected = provider.captured_amount - provider.refunded_amount
    if context.charged is None or context.refunds_pending or context.charged == expected:
        return  # a pending refund request has already left Saleor's charged amount
    why = (
        "a capture or refund was not reported to Saleor"
        if context.charged < expected
        else "Saleor counts charges the provider does not have, or a refund made elsewhere"
    )
    found.add(
        Kind.CHARGE_DRIFT,
        f"Saleor shows {money(context.charged)} charged, the provider {money(expected)} captured and not "
        f"refunded ({why}).",
        f"{_RETRY}: KOM reports its captures and refunds again; record the ones made elsewhere in Saleor.",
    )


def _left_open(found: _Found, order: Order, provider: ProviderOrder) -> None:
    open_amount = provider.remaining_authorized_amount
    pending = {Kind.SHIPMENT_NOT_CAPTURED.value, Kind.RELEASE_PENDING.value}
    if (
        open_amount > 0
        and provider.status not in ("CLOSED", "EXPIRED")
        and not any(f.kind in pending for f in found.items)
        and unshipped_units(order, provider) == 0
    ):
        found.add(
            Kind.AUTHORIZATION_LEFT_OPEN,
            f"Everything has shipped and been captured, but {_money(provider)(open_amount)} is still "
            "authorized.",
            "Cancel the rest of the payment in Saleor (KOM then releases it), or release it in the "
            "provider's portal.",
        )


def _clock(found: _Found, order: Order, provider: ProviderOrder, context: Context) -> None:
    extend = context.settings.extend_authorization
    reading = read_clock(order, provider, extend=extend, window=context.window, now=context.now)
    if reading.decision is Decision.NOTHING:
        return
    if reading.state == "expired":
        found.add(
            Kind.AUTHORIZATION_EXPIRED,
            reading.message,
            "Ask the shopper to pay for the unshipped items another way, or cancel them on the order.",
        )
    elif reading.decision is Decision.EXTEND:
        found.add(
            Kind.AUTHORIZATION_EXPIRING,
            reading.message,
            "None: automatic extension is on for this channel; KOM extends it when it next syncs the order.",
        )
    else:
        found.add(
            Kind.AUTHORIZATION_EXPIRING,
            reading.message,
            "Ship the remaining items before then, or turn on automatic extension in KOM's settings.",
        )


def _money(provider: ProviderOrder) -> Callable[[int], str]:
    return functools.partial(format_money, currency=provider.currency)


def _name(capture: ProviderCapture) -> str:
    return capture.klarna_reference or capture.capture_id


def _references(capture: ProviderCapture) -> str:
    return ", ".join(_unique(line.reference for line in capture.lines if line.reference)) or "none"


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _items(units: int) -> str:
    return f"{units} item{'s' if units != 1 else ''}"
