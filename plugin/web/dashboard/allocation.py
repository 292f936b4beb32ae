"""The allocation view of one order: each capture as an invoice, each refund on the invoice it went to.

What the provider has on record is the truth (captures and refunds made in its portal show
up too). Refunds are booked on captures with KOM's own ``Ledger``, which follows the
provider's allocation rule, so what the page shows is what the provider did. Tracking and
the Saleor fulfillment come from the platform's shipment the capture was made for (KOM's
capture reference names it).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from adapters.klarna import errors as provider_errors
from plugin.composition import Services
from plugin.domain.ledger import CaptureState, Ledger
from plugin.domain.money import exponent
from plugin.domain.provider import ProviderLine, ProviderOrder
from plugin.domain.references import REFUND_PREFIX, capture_reference, refund_reference_prefix
from plugin.domain.snapshot import Shipment
from plugin.service.authorization import read_clock
from plugin.service.ports import PlatformOrder
from plugin.service.records import Installation, OrderJob, StoredRequest
from plugin.web.dashboard.activity import current_findings, finding_view, job_view

log = logging.getLogger("kom.dashboard")

PROVIDER_NAMES = {"klarna": "Klarna", "kustom": "Kustom"}


async def order_view(services: Services, installation: Installation, job: OrderJob) -> dict[str, Any]:
    warnings: list[dict[str, str]] = []
    platform_order: PlatformOrder | None = None
    try:
        platform_order = await services.platform(installation).fetch_order(job.platform_order_id)
    except Exception as exc:  # Saleor down, order deleted, unreadable: show what the provider has
        log.info("dashboard: could not read Saleor order %s: %s", job.platform_order_id, exc)
        warnings.append(
            {"kind": "platform_unreadable", "message": f"KOM could not read this order from Saleor: {exc}"}
        )
    view: dict[str, Any] = {
        "order": job_view(job),
        "channel": platform_order.channel if platform_order else None,
        "provider": None,
        "captures": [],
        "refunds": [],
        "warnings": warnings,
        "authorization": None,
        "findings": [
            finding_view(f, True)
            for f in await current_findings(services.store, installation.id, job.platform_order_id)
        ],
    }
    if platform_order is not None and not view["order"]["number"]:
        view["order"]["number"] = platform_order.order.number
    provider_order_id = job.provider_order_id or (
        platform_order.provider_order_id if platform_order else None
    )
    if provider_order_id is None:
        if platform_order is not None:
            warnings.append(
                {
                    "kind": "not_linked",
                    "message": "This order has no Klarna or Kustom payment that KOM manages.",
                }
            )
        return view
    settings = await services.store.settings_for(
        installation.id, platform_order.channel if platform_order else None
    )
    if settings is None:
        warnings.append(
            {
                "kind": "not_configured",
                "message": (
                    "KOM has no provider settings for this order's channel: configure them under Settings."
                ),
            }
        )
        return view
    provider = services.provider(settings)
    try:
        provider_order = await provider.get_order(provider_order_id)
    except provider_errors.ProviderError as exc:
        warning = {"kind": "provider_unreadable", "message": f"KOM could not read the provider order: {exc}"}
        correlation_id = getattr(exc, "correlation_id", None)
        if correlation_id:
            warning["correlation_id"] = correlation_id
        warnings.append(warning)
        view["provider"] = {
            "order_id": provider_order_id,
            "portal_url": provider.portal_url(provider_order_id),
        }
        return view
    view.update(
        allocation(
            provider_order,
            platform_order.order.shipments if platform_order else (),
            provider.portal_url(provider_order_id),
        )
    )
    requests = await services.store.requests_for(installation.id, job.platform_order_id, kind="refund")
    for refund in view["refunds"]:
        refund["platform_refund"] = platform_refund(refund["reference"], requests)
    view["allocation_broken"] = any(w["kind"] == "misallocated" for w in view["warnings"])
    view["provider"]["name"] = PROVIDER_NAMES.get(settings.provider, settings.provider)
    if platform_order is not None:
        reading = read_clock(
            platform_order.order,
            provider_order,
            extend=settings.extend_authorization,
            window=timedelta(hours=services.settings.authorization_warning_hours),
            now=services.store.clock(),
        )
        view["authorization"] = {
            "state": reading.state,
            "expires_at": reading.expires_at.isoformat() if reading.expires_at else None,
            "unshipped_units": reading.unshipped_units,
            "message": reading.message,
            "extend": settings.extend_authorization,
        }
    view["warnings"] = warnings + view["warnings"]
    return view


def platform_refund(reference: str | None, requests: Sequence[StoredRequest]) -> dict[str, Any] | None:
    """The Saleor refund a provider refund of KOM's was made for: its grant, amount and reason."""
    for request in requests:
        if (reference or "").startswith(refund_reference_prefix(request.request_id)):
            grant = _grant_number(request.request_id)
            return {
                "id": request.request_id,
                "label": f"Saleor refund {grant}" if grant else "Saleor refund (amount only)",
                "amount": request.body.get("amount"),
                "reason": request.body.get("reason"),
                "requested_at": request.created_at.isoformat() if request.created_at else None,
            }
    return None


def _grant_number(request_id: str) -> str | None:
    """``OrderGrantedRefund:7`` (Saleor's base64 global id) -> ``7``; an amount-only refund -> None."""
    try:
        kind, _, number = base64.b64decode(request_id, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return number if kind == "OrderGrantedRefund" and number else None


def allocation(
    order: ProviderOrder, shipments: tuple[Shipment, ...] = (), portal_url: str | None = None
) -> dict[str, Any]:
    """Captures as invoices and refunds with the invoice each was booked on (pure)."""
    by_reference = {capture_reference(s.id): s for s in shipments}
    ledger = Ledger()
    states = [ledger.add_capture(capture) for capture in order.captures]
    bookings: list[tuple[CaptureState | None, str | None]] = []
    for refund in order.refunds:
        key = refund.refund_id or (refund.reference or "?")
        target = ledger.book(key, refund.refunded_amount, refund.lines)
        reason = None if target is not None else dict(ledger.misallocated).get(key)
        bookings.append((target, reason))
    invoices: dict[int, str | None] = {}
    captures: list[dict[str, Any]] = []
    for capture, state in zip(order.captures, states, strict=True):
        shipment = by_reference.get(capture.reference or "")
        invoices[state.parcel] = capture.klarna_reference
        tracking = shipment.tracking if shipment else None
        captures.append(
            {
                "parcel": state.parcel,
                "capture_id": capture.capture_id,
                "klarna_reference": capture.klarna_reference,
                "reference": capture.reference,
                "made_by": "kom" if shipment is not None or state.key != capture.capture_id else "elsewhere",
                "fulfillment": shipment.number if shipment else None,
                "captured_at": capture.captured_at.isoformat() if capture.captured_at else None,
                "captured_amount": capture.captured_amount,
                "refunded_amount": state.refunded,
                "left": state.left,
                "provider_refunded_amount": capture.refunded_amount,
                "tracking": (
                    {"company": tracking.company, "number": tracking.number, "uri": tracking.uri}
                    if tracking and (tracking.number or tracking.company)
                    else None
                ),
                "lines": [_capture_line(line, state) for line in capture.lines],
            }
        )
    refunds: list[dict[str, Any]] = []
    for refund, (target, reason) in zip(order.refunds, bookings, strict=True):
        refunds.append(
            {
                "refund_id": refund.refund_id,
                "reference": refund.reference,
                "made_by": "kom" if (refund.reference or "").startswith(REFUND_PREFIX) else "elsewhere",
                "refunded_at": refund.refunded_at.isoformat() if refund.refunded_at else None,
                "refunded_amount": refund.refunded_amount,
                "booked_on": target.parcel if target else None,
                "booked_on_invoice": invoices.get(target.parcel) if target else None,
                "not_allocated_reason": reason,
                "lines": [_line(line) for line in refund.lines],
            }
        )
    warnings: list[dict[str, str]] = []
    if ledger.misallocated:
        first_id, first_reason = ledger.misallocated[0]
        first = next(r for r in refunds if (r["refund_id"] or r["reference"] or "?") == first_id)
        elsewhere = first["made_by"] == "elsewhere"
        warnings.append(
            {
                "kind": "misallocated",
                "message": (
                    f"{'A refund made outside KOM' if elsewhere else 'A refund'} ({first_id}) could not "
                    f"be allocated to an invoice: {first_reason}. The provider then stops allocating every "
                    "later refund of this order, so invoices may show more open than the shopper owes. "
                    "Settle this order in the provider's portal."
                ),
            }
        )
    for card in captures:
        reported = card["provider_refunded_amount"]
        if reported is not None and reported != card["refunded_amount"] and not ledger.misallocated:
            warnings.append(
                {
                    "kind": "mismatch",
                    "message": (
                        f"The provider reports a different refunded amount on invoice {card['parcel']} "
                        "than KOM's allocation; check the order in the provider's portal."
                    ),
                }
            )
    return {
        "provider": {
            "order_id": order.order_id,
            "status": order.status,
            "currency": order.currency,
            "exponent": exponent(order.currency),
            "order_amount": order.order_amount,
            "captured_amount": order.captured_amount,
            "refunded_amount": order.refunded_amount,
            "remaining_authorized_amount": order.remaining_authorized_amount,
            "expires_at": order.expires_at.isoformat() if order.expires_at else None,
            "portal_url": portal_url,
        },
        "captures": captures,
        "refunds": refunds,
        "warnings": warnings,
    }


def _line(line: ProviderLine) -> dict[str, Any]:
    return {
        "reference": line.reference,
        "name": line.name,
        "type": line.type,
        "quantity": line.quantity,
        "total_amount": line.total_amount,
    }


def _capture_line(line: ProviderLine, state: CaptureState) -> dict[str, Any]:
    view = _line(line)
    booked = state.references.get(line.reference or "")
    view["refunded_quantity"] = booked.refunded_quantity if booked and booked.line is line else 0
    view["refunded_amount"] = booked.refunded_amount if booked and booked.line is line else 0
    return view
