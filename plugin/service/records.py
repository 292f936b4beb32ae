"""The records the use cases work with, as the store reads and writes them.

Plain frozen dataclasses, so the service layer depends on them and on ports only, never
on the database code (plugin/store) that fills them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugin.domain.policy import OriginPolicy, Policy, ShippingFeePolicy


@dataclass(frozen=True)
class Installation:
    id: int
    platform: str
    api_url: str
    app_id: str
    token: str
    jwks: dict[str, Any]
    jwks_fetched_at: datetime

    def __repr__(self) -> str:  # the token never shows up in logs or tracebacks
        return f"Installation(id={self.id}, api_url={self.api_url!r}, app_id={self.app_id!r})"


@dataclass(frozen=True)
class ChannelSettings:
    channel: str
    provider: str
    environment: str
    region: str
    api_key: str
    username: str | None
    base_url: str | None
    capture_mode: str = "on_fulfillment"
    shipping_fee: str = ShippingFeePolicy.FIRST_PARCEL.value
    unknown_origin: str = OriginPolicy.EARLIEST_FIRST.value
    extend_authorization: bool = False
    """Extend the provider authorization when it is about to expire with goods unshipped."""

    def policy(self, *, charge_requested: bool = False) -> Policy:
        return Policy(
            shipping_fee=ShippingFeePolicy(self.shipping_fee),
            unknown_origin=OriginPolicy(self.unknown_origin),
            capture_shipments=self.capture_mode == "on_fulfillment" or charge_requested,
        )

    def __repr__(self) -> str:
        return (
            f"ChannelSettings(channel={self.channel!r}, provider={self.provider!r}, "
            f"environment={self.environment!r}, region={self.region!r}, api_key='***')"
        )


@dataclass(frozen=True)
class OrderJob:
    id: int
    installation_id: int
    platform_order_id: str
    state: str
    attempts: int
    hints: int
    reason: str | None = None
    provider_order_id: str | None = None
    order_number: str | None = None
    due_at: datetime | None = None
    updated_at: datetime | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class StoredRequest:
    """A refund, cancel or charge request the platform sent, as KOM recorded it.

    ``psp_reference`` is this request's identity on the platform (what KOM answered and
    reports the outcome with): new for every request, the same for a duplicate delivery.
    ``request_id`` is what KOM acts on, and may repeat: a granted refund requested again
    after a refusal is a new request for the same grant (and the same provider refund
    references, so nothing already sent for it is sent twice). ``transaction_id`` is the
    payment the request names: an order with two payments has requests for each.
    """

    id: int
    kind: str
    request_id: str
    psp_reference: str
    transaction_id: str
    body: dict[str, Any]
    created_at: datetime
    done: bool


@dataclass(frozen=True)
class Outcome:
    """What the provider answered to one action, recorded the moment the answer came.

    Reports are made from these records, not from a re-read of the provider (which may lag
    behind a write), so a report sent again says the same thing. ``started`` is written
    before the call: after a crash it says what KOM meant to do (e.g. that a refund was one
    KOM made on its own), and the provider's record tells whether it happened.
    """

    key: str
    """The capture's or refund's ``reference`` (how the provider's record names it), else the action key."""
    kind: str  # capture | refund | shipping_info | release | cancel
    status: str  # started | done | failed
    amount: int = 0
    provider_id: str | None = None  # capture id, refund id
    request_id: str | None = None  # the platform request (refund, cancel) it answers
    parcel: int | None = None
    capture: str | None = None  # refunds: the capture (id or reference) it is booked on
    automatic: bool = False  # a refund KOM made on its own, with no platform request
    message: str | None = None  # why it failed, for the merchant
    correlation_id: str | None = None


class RequestConflict(Exception):
    """A request whose identity is on record for another order: refused, never merged."""


@dataclass(frozen=True)
class FindingRecord:
    """A needs-attention item about one order (from `kom reconcile` or the authorization clock)."""

    platform_order_id: str
    kind: str
    detail: str
    suggested_action: str
    source: str = "reconcile"  # reconcile | authorization
    order_number: str | None = None
    subject: str | None = None  # the shipment, refund or capture it is about
    found_at: datetime | None = None


@dataclass(frozen=True)
class AuthorizationRecord:
    """The last look at one order's provider authorization: when it expires, what is left."""

    platform_order_id: str
    provider_order_id: str
    state: str  # settled | ok | warning | expired
    expires_at: datetime | None
    unshipped_units: int
    remaining_amount: int
    currency: str
    message: str | None = None
    checked_at: datetime | None = None
    warned_for: datetime | None = None
    """The expiry the merchant was last warned about (one warning per expiry)."""
    extended_at: datetime | None = None
    extensions: int = 0


@dataclass(frozen=True)
class QueueStats:
    counts: dict[str, int]  # orders per state (pending, in_sync, needs_attention)
    oldest_due_at: datetime | None  # of the pending orders

    def oldest_age(self, now: datetime) -> float:
        """Seconds the oldest due order has been waiting (0 when none is overdue)."""
        if self.oldest_due_at is None:
            return 0.0
        return max((now - self.oldest_due_at).total_seconds(), 0.0)
