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


Action = CaptureAction | RefundAction


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
