"""What the payment provider (Klarna / Kustom Order Management) has on record for an order.

Built by the provider adapter from ``GET /ordermanagement/v1/orders/{id}``. The planner
trusts this over anything KOM remembers: captures and refunds made elsewhere show up
here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ProviderLine:
    """An order line exactly as recorded on a capture or refund."""

    reference: str | None
    name: str
    type: str
    quantity: int
    unit_price: int
    total_amount: int
    total_discount_amount: int = 0
    tax_rate: int = 0
    total_tax_amount: int = 0
    goodwill: bool = False
    """True for amount-only refund lines KOM made; they carry no returned units."""


@dataclass(frozen=True)
class ProviderCapture:
    capture_id: str
    captured_amount: int
    lines: tuple[ProviderLine, ...]
    reference: str | None = None
    klarna_reference: str | None = None
    captured_at: datetime | None = None
    refunded_amount: int | None = None
    tracking_numbers: tuple[str, ...] = ()
    """Tracking numbers in the capture's shipping info (a re-fulfilment's are added here)."""


@dataclass(frozen=True)
class ProviderRefund:
    refund_id: str
    refunded_amount: int
    lines: tuple[ProviderLine, ...]
    reference: str | None = None
    refunded_at: datetime | None = None


@dataclass(frozen=True)
class ProviderOrder:
    order_id: str
    status: str
    currency: str
    order_amount: int
    captured_amount: int
    refunded_amount: int
    remaining_authorized_amount: int
    captures: tuple[ProviderCapture, ...] = ()
    refunds: tuple[ProviderRefund, ...] = ()
    expires_at: datetime | None = None
    """When the authorization expires (Klarna's ``expires_at``), if the provider says."""
