"""Pure conversions between KOM's domain types and the Order Management wire models."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.klarna.models import (
    SHIPPING_METHODS,
    CaptureRequest,
    Order,
    OrderLine,
    RefundRequest,
    ShippingInfo,
)
from plugin.domain.actions import CaptureAction, PlannedLine, RefundAction
from plugin.domain.provider import ProviderCapture, ProviderLine, ProviderOrder, ProviderRefund
from plugin.domain.snapshot import Tracking

# Marks amount-only refund lines KOM made, so reading the order back recognises them.
GOODWILL_MARK = "kom:goodwill"
GOODWILL_PREFIX = "Goodwill: "

_METHODS_BY_LOWER = {method.lower(): method for method in SHIPPING_METHODS}


def capture_request(action: CaptureAction) -> CaptureRequest:
    """Body of ``POST /captures`` for one shipment."""
    shipping = _shipping_info(action.tracking) if action.tracking else None
    return CaptureRequest(
        captured_amount=action.captured_amount,
        description=_fit(action.description, 255) or None,
        reference=action.reference,  # never cut: it appears in settlement files as-is
        order_lines=[_line(line) for line in action.lines] or None,
        shipping_info=[shipping] if shipping else None,
    )


def refund_request(action: RefundAction) -> RefundRequest:
    """Body of ``POST /refunds``; the line references are what allocate it to the capture."""
    return RefundRequest(
        refunded_amount=action.refunded_amount,
        description=_fit(action.description, 255) or None,
        reference=action.reference,
        order_lines=[_line(line) for line in action.lines] or None,
    )


def provider_order(order: Order) -> ProviderOrder:
    """What the provider has on record, in domain terms. Missing order amounts count as 0."""
    return ProviderOrder(
        order_id=order.order_id,
        status=order.status,
        currency=order.purchase_currency.upper(),  # Klarna's examples use lower case ("usd")
        order_amount=order.order_amount or 0,
        captured_amount=order.captured_amount or 0,
        refunded_amount=order.refunded_amount or 0,
        remaining_authorized_amount=order.remaining_authorized_amount or 0,
        expires_at=_timestamp(order.expires_at),
        captures=tuple(
            ProviderCapture(
                capture_id=capture.capture_id,
                captured_amount=capture.captured_amount,
                lines=tuple(_provider_line(line) for line in capture.order_lines),
                reference=capture.reference,
                klarna_reference=capture.klarna_reference,
                captured_at=_timestamp(capture.captured_at),
                # None stays None: "not reported" is not the same as "nothing refunded".
                refunded_amount=capture.refunded_amount,
                tracking_numbers=tuple(
                    info.tracking_number for info in capture.shipping_info if info.tracking_number
                ),
            )
            for capture in order.captures
        ),
        refunds=tuple(
            ProviderRefund(
                refund_id=refund.refund_id,
                refunded_amount=refund.refunded_amount,
                lines=tuple(_provider_line(line) for line in refund.order_lines),
                reference=refund.reference,
                refunded_at=_timestamp(refund.refunded_at),
            )
            for refund in order.refunds
        ),
    )


def _line(line: PlannedLine) -> OrderLine:
    return OrderLine(
        reference=line.reference,  # byte-identical between capture and refund, never cut
        name=_fit(line.name, 255),
        type=line.type,
        quantity=line.quantity,
        unit_price=line.unit_price,
        tax_rate=line.tax_rate,
        total_amount=line.total_amount,
        total_discount_amount=line.total_discount_amount,
        total_tax_amount=line.total_tax_amount,
        merchant_data=GOODWILL_MARK if line.goodwill else None,
    )


def shipping_info(tracking: Tracking) -> list[ShippingInfo]:
    """``POST /captures/{id}/shipping-info`` entries for one parcel's tracking (may be none)."""
    info = _shipping_info(tracking)
    return [info] if info else []


def _shipping_info(tracking: Tracking) -> ShippingInfo | None:
    company, number = tracking.company or None, tracking.number or None
    if company is None and number is None:
        return None
    method = _METHODS_BY_LOWER.get((tracking.method or "").strip().lower())
    uri = tracking.uri if tracking.uri and len(tracking.uri) <= 1024 else None  # a cut URI is useless
    return ShippingInfo(
        shipping_company=_fit(company, 100) if company else None,
        shipping_method=method,
        tracking_number=_fit(number, 100) if number else None,
        tracking_uri=uri,
    )


def _provider_line(line: OrderLine) -> ProviderLine:
    return ProviderLine(
        reference=line.reference,
        name=line.name,
        type=line.type or "physical",  # Klarna's default line type
        quantity=line.quantity,
        unit_price=line.unit_price,
        total_amount=line.total_amount,
        total_discount_amount=line.total_discount_amount or 0,
        tax_rate=line.tax_rate or 0,
        total_tax_amount=line.total_tax_amount or 0,
        goodwill=line.merchant_data == GOODWILL_MARK or line.name.startswith(GOODWILL_PREFIX),
    )


def _timestamp(value: str | None) -> datetime | None:
    """ISO 8601 to an aware datetime; None when absent or unreadable (it is informational)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fit(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` UTF-16 code units without splitting a character.

    Klarna states limits in "characters" without saying how it counts; UTF-16 units are
    the stricter reading (an emoji counts twice), so text cut this way fits either way.
    """
    if len(text.encode("utf-16-le")) <= 2 * limit:
        return text
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text
