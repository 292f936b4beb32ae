"""The ports use cases talk to. Adapters implement them; tests use faithful fakes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from plugin.domain.actions import CaptureAction, RefundAction
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import Order, Tracking
from plugin.service.records import (
    AuthorizationRecord,
    ChannelSettings,
    FindingRecord,
    Installation,
    OrderJob,
    Outcome,
    StoredRequest,
)


class PaymentProvider(Protocol):
    """Order Management of one merchant account (Klarna, Kustom, ...)."""

    async def get_order(self, order_id: str) -> ProviderOrder: ...

    async def capture(self, order_id: str, action: CaptureAction) -> str:
        """Make the capture; returns the provider's capture id."""
        ...

    async def refund(self, order_id: str, action: RefundAction) -> str:
        """Make the refund; returns the provider's refund id."""
        ...

    async def add_shipping_info(
        self, order_id: str, capture_id: str, tracking: Tracking, idempotency_key: uuid.UUID
    ) -> None:
        """Add a parcel's tracking to an existing capture."""
        ...

    async def cancel(self, order_id: str, idempotency_key: uuid.UUID) -> None: ...

    async def release_remaining_authorization(self, order_id: str, idempotency_key: uuid.UUID) -> None: ...

    async def extend_authorization(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        """Move the authorization's expiry forward (Klarna: today + the account's period, ≤ 180 days)."""
        ...

    def portal_url(self, order_id: str) -> str | None:
        """Where the merchant sees this order in the provider's portal."""
        ...


@dataclass(frozen=True)
class PlatformOrder:
    """The platform's order, and which of its payments is the provider order KOM manages."""

    order: Order
    channel: str | None
    transaction_id: str | None
    provider_order_id: str | None
    charged: int | None = None
    """What the platform's payment shows charged now (captured minus refunded), if it says."""


@dataclass(frozen=True)
class TransactionReport:
    """An outcome to show on the platform's payment (e.g. Saleor's transactionEventReport)."""

    type: str  # CHARGE_SUCCESS, REFUND_SUCCESS, REFUND_FAILURE, CANCEL_SUCCESS, ...
    psp_reference: str
    amount: int
    currency: str
    message: str
    external_url: str | None = None


@dataclass(frozen=True)
class OutboxReport:
    """A report waiting in KOM's outbox (or sent, or refused by the platform)."""

    transaction_id: str
    report: TransactionReport
    id: int | None = None
    state: str = "pending"  # pending | sent | refused
    error: str | None = None


class ReportRefused(Exception):
    """The platform answered and will not record this report (e.g. Saleor's
    ``transactionEventReport`` errors). Sending it again cannot help; other reports go on."""


class Platform(Protocol):
    """One installation on a shop platform (Saleor, Shopify, ...)."""

    async def fetch_order(self, order_id: str) -> PlatformOrder: ...

    async def report(
        self, transaction_id: str, report: TransactionReport, actions: Sequence[str] | None = None
    ) -> None:
        """Record the outcome on the platform's payment; ``ReportRefused`` when it will not.

        ``actions``: the buttons the platform should offer on the payment from now on
        (CHARGE, REFUND, CANCEL); None leaves them as they are."""
        ...

    async def recent_orders(self, since: datetime) -> list[str]:
        """Ids of orders changed since ``since`` (for the sweep that catches lost webhooks)."""
        ...


class AuthorizationStore(Protocol):
    """What the clock needs from KOM's database (plugin.store.store.Store implements it)."""

    async def authorizations(
        self, installation_id: int, platform_order_ids: Sequence[str]
    ) -> dict[str, AuthorizationRecord]: ...

    async def save_authorization(self, installation_id: int, record: AuthorizationRecord) -> None: ...

    async def replace_findings(
        self, installation_id: int, platform_order_id: str, source: str, findings: Sequence[FindingRecord]
    ) -> None: ...

    async def authorizations_due(self, *, warn_before: datetime, now: datetime) -> list[tuple[int, str]]: ...

    async def touch_order(
        self, installation_id: int, platform_order_id: str, *, number: str | None = None
    ) -> None: ...


class WorkStore(AuthorizationStore, Protocol):
    """What the worker needs from KOM's database (implemented by plugin.store.store.Store)."""

    def clock(self) -> datetime: ...

    async def claim(self, worker_id: str, lease: timedelta) -> OrderJob | None: ...

    async def finish(
        self,
        job: OrderJob,
        *,
        state: str,
        reason: str | None = None,
        provider_order_id: str | None = None,
        correlation_id: str | None = None,
    ) -> bool: ...

    async def retry_later(
        self, job: OrderJob, *, error: str, delay: timedelta, give_up: bool, correlation_id: str | None = None
    ) -> None: ...

    async def installation(self, installation_id: int) -> Installation | None: ...

    async def installations(self) -> list[Installation]: ...

    async def settings_for(self, installation_id: int, channel: str | None) -> ChannelSettings | None: ...

    async def requests_for(
        self, installation_id: int, platform_order_id: str, *, kind: str | None = None
    ) -> list[StoredRequest]: ...

    async def mark_done(self, request_ids: Sequence[int]) -> None: ...

    async def renew(self, job: OrderJob, worker_id: str, lease: timedelta) -> bool:
        """Extend the lease on ``job``; False when the worker no longer holds it."""
        ...

    async def outcomes(self, installation_id: int, provider_order_id: str) -> list[Outcome]: ...

    async def record_outcome(
        self, installation_id: int, platform_order_id: str, provider_order_id: str, outcome: Outcome
    ) -> None:
        """Record (or complete) the outcome of one action; a ``done`` record is never replaced."""
        ...

    async def queue_reports(
        self,
        installation_id: int,
        platform_order_id: str,
        reports: Sequence[OutboxReport],
        done_request_ids: Sequence[int],
    ) -> None:
        """Put reports in the outbox (the first wording of a report wins) and mark the
        requests they answer done, in one transaction."""
        ...

    async def order_reports(self, installation_id: int, platform_order_id: str) -> list[OutboxReport]: ...

    async def report_sent(self, report_id: int) -> None: ...

    async def report_refused(self, report_id: int, error: str) -> None: ...

    async def order_job(self, installation_id: int, platform_order_id: str) -> OrderJob | None: ...

    async def touch_order(
        self, installation_id: int, platform_order_id: str, *, number: str | None = None
    ) -> None: ...
