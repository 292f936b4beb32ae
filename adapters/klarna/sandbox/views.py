"""JSON shapes of orders, captures, refunds (MerchantOrderDto / Capture / Refund) and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from .state import Capture, Order, Refund
from .validation import OrderLine


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def absolute_url(request: Request, path: str) -> str:
    """Location header value: Klarna answers with absolute URLs."""
    return str(request.base_url).rstrip("/") + path


def _lines(lines: tuple[OrderLine, ...]) -> list[dict[str, object]]:
    return [dict(line.raw) for line in lines]


def _optional(**fields: object) -> dict[str, object]:
    return {k: v for k, v in fields.items() if v is not None}


def capture_json(capture: Capture) -> dict[str, object]:
    return {
        "capture_id": capture.capture_id,
        "klarna_reference": capture.klarna_reference,
        "captured_amount": capture.captured_amount,
        "captured_at": timestamp(capture.captured_at),
        **_optional(description=capture.description, reference=capture.reference),
        "order_lines": _lines(capture.order_lines),
        "refunded_amount": capture.refunded_amount,
        "shipping_info": [dict(info) for info in capture.shipping_info],
    }


def refund_json(refund: Refund) -> dict[str, object]:
    return {
        "refund_id": refund.refund_id,
        "refunded_amount": refund.refunded_amount,
        "refunded_at": timestamp(refund.refunded_at),
        **_optional(description=refund.description, reference=refund.reference),
        "order_lines": _lines(refund.order_lines),
        **_optional(credit_invoice=refund.credit_invoice),
    }


def order_json(order: Order) -> dict[str, object]:
    return {
        "order_id": order.order_id,
        "status": order.status.value,
        "fraud_status": "ACCEPTED",
        "order_amount": order.order_amount,
        "original_order_amount": order.original_order_amount,
        "captured_amount": order.captured_amount,
        "refunded_amount": order.refunded_amount,
        "remaining_authorized_amount": order.remaining_authorized_amount,
        "purchase_currency": order.purchase_currency,
        "purchase_country": order.purchase_country,
        "locale": order.locale,
        "order_lines": _lines(order.order_lines),
        "klarna_reference": order.klarna_reference,
        **_optional(
            merchant_reference1=order.merchant_reference1, merchant_reference2=order.merchant_reference2
        ),
        "created_at": timestamp(order.created_at),
        "expires_at": timestamp(order.expires_at),
        "captures": [capture_json(c) for c in order.captures],
        "refunds": [refund_json(r) for r in order.refunds],
    }


def ledger_json(order: Order) -> dict[str, object]:
    """Sandbox-only view of where each refund was booked (Klarna exposes no such field)."""
    result = order.ledger()
    references = {c.capture_id: c.klarna_reference for c in order.captures}
    return {
        "order_id": order.order_id,
        "captures": [
            {
                "capture_id": c.capture_id,
                "klarna_reference": c.klarna_reference,
                "captured_amount": c.captured_amount,
                "refunded_amount": result.refunded_by_capture[c.capture_id],
            }
            for c in order.captures
        ],
        "refunds": [
            {
                "refund_id": a.refund_id,
                "refunded_amount": a.refunded_amount,
                "allocated": a.allocated,
                "capture_id": a.capture_id,
                "capture_klarna_reference": references.get(a.capture_id) if a.capture_id else None,
                "reason": a.reason,
            }
            for a in result.allocations
        ],
        "unallocated_amount": result.unallocated_amount,
    }
