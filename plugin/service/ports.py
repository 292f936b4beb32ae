"""The ports use cases talk to. Adapters implement them; tests use faithful fakes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from plugin.domain.actions import CaptureAction, RefundAction
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import Order


class PaymentProvider(Protocol):
    """Order Management of one merchant account (Klarna, Kustom, ...)."""

    async def get_order(self, order_id: str) -> ProviderOrder: ...

    async def capture(self, order_id: str, action: CaptureAction) -> str:
        """Make the capture; returns the provider's capture id."""
        ...

    async def refund(self, order_id: str, action: RefundAction) -> str:
        """Make the refund; returns the provider's refund id."""
        ...

    async def cancel(self, order_id: str, idempotency_key: uuid.UUID) -> None: ...

    async def release_remaining_authorization(self, order_id: str, idempotency_key: uuid.UUID) -> None: ...

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


@dataclass(frozen=True)
class TransactionReport:
    """An outcome to show on the platform's payment (e.g. Saleor's transactionEventReport)."""

    type: str  # CHARGE_SUCCESS, REFUND_SUCCESS, REFUND_FAILURE, CANCEL_SUCCESS, ...
    psp_reference: str
    amount: int
    currency: str
    message: str
    external_url: str | None = None


class Platform(Protocol):
    """One installation on a shop platform (Saleor, Shopify, ...)."""

    async def fetch_order(self, order_id: str) -> PlatformOrder: ...

    async def report(self, transaction_id: str, report: TransactionReport) -> None: ...

    async def recent_orders(self, since: datetime) -> list[str]:
        """Ids of orders changed since ``since`` (for the sweep that catches lost webhooks)."""
        ...
