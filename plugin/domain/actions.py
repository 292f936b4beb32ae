"""What the planner decides: provider writes to make, and requests it refuses to make."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from plugin.domain.snapshot import Tracking

# Fixed namespace for KOM's UUIDv5 idempotency keys. Never change it: keys of actions
# retried after an upgrade must stay the same.
KOM_NAMESPACE = uuid.UUID("6f1b5c1e-4a55-5b0e-9c53-6b4f4d0b2a71")


def idempotency_key(provider_order_id: str, action_key: str) -> uuid.UUID:
    """Deterministic ``Klarna-Idempotency-Key`` for one business action on one order."""
    return uuid.uuid5(KOM_NAMESPACE, f"{provider_order_id}|{action_key}")


@dataclass(frozen=True)
class PlannedLine:
    """An order line to send to the provider; satisfies Klarna's line arithmetic."""

    reference: str
    name: str
    type: str
    quantity: int
    unit_price: int
    total_discount_amount: int
    total_amount: int
    tax_rate: int
    total_tax_amount: int
    goodwill: bool = False


@dataclass(frozen=True)
class CaptureAction:
    """Capture one shipment: ``POST /captures``."""

    key: str
    reference: str
    idempotency_key: uuid.UUID
    shipment_id: str
    parcel: int
    captured_amount: int
    lines: tuple[PlannedLine, ...]
    description: str
    tracking: Tracking | None = None


@dataclass(frozen=True)
class RefundAction:
    """One refund booked on exactly one capture: ``POST /refunds``."""

    key: str
    reference: str
    idempotency_key: uuid.UUID
    request_id: str
    capture: str
    """The provider capture id, or the reference of a capture planned in the same plan."""
    parcel: int
    refunded_amount: int
    lines: tuple[PlannedLine, ...]
    description: str
    automatic: bool = False
    """True for a refund KOM makes on its own (goods that will never ship, e.g. on a cancelled
    order); no platform request waits for it, so it is reported as a refund of its own."""


@dataclass(frozen=True)
class ShippingInfoAction:
    """Add a re-fulfilment's tracking to the capture that already covers its goods.

    A parcel that was cancelled after its capture and then shipped again is not captured a
    second time (the authorization is used up); its tracking joins the first capture.
    """

    key: str
    idempotency_key: uuid.UUID
    shipment_id: str
    capture: str
    """The provider capture id that covers the shipment's goods."""
    parcel: int
    tracking: Tracking


@dataclass(frozen=True)
class ReleaseAction:
    """The order will ship nothing more (cancelled on the platform): free the authorization.

    ``cancel`` is True when nothing was ever captured (cancel the whole provider order),
    else the remaining authorization is released. ``amount`` is what gets freed.
    """

    key: str
    idempotency_key: uuid.UUID
    cancel: bool
    amount: int


Action = CaptureAction | RefundAction | ShippingInfoAction | ReleaseAction


class RefusalCode(StrEnum):
    OVER_REFUND = "over_refund"
    NOT_CAPTURED = "not_captured"
    ORIGIN_EXHAUSTED = "origin_exhausted"
    CAPTURE_EXCEEDED = "capture_exceeded"
    EARLIER_REFUND_MISALLOCATED = "earlier_refund_misallocated"
    UNKNOWN_LINE = "unknown_line"
    OVER_SHIPPED = "over_shipped"
    AUTHORIZATION_EXCEEDED = "authorization_exceeded"
    UNMATCHED_CAPTURE_LINE = "unmatched_capture_line"
    INVALID_LINE = "invalid_line"
    PARTLY_SENT = "partly_sent"
    TOO_MANY_LINES = "too_many_lines"
    NEVER_CHARGED = "never_charged"
    SHIPPING_NOT_CAPTURED = "shipping_not_captured"
    GRANT_CAPPED = "grant_capped"


@dataclass(frozen=True)
class Refusal:
    """A shipment or refund the planner will not act on, with the reason for the merchant."""

    subject: str  # "shipment" | "refund" | "order"
    subject_id: str
    code: RefusalCode
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    settled: tuple[str, ...] = ()
    """Refund requests that need no provider refund at all (only goods worth nothing)."""
