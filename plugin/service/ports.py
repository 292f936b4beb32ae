"""The ports use cases talk to. Adapters implement them; tests use faithful fakes."""

from __future__ import annotations

from typing import Protocol

from plugin.domain.actions import CaptureAction, RefundAction
from plugin.domain.provider import ProviderOrder


class PaymentProvider(Protocol):
    """Order Management of one merchant account (Klarna, Kustom, ...)."""

    async def get_order(self, order_id: str) -> ProviderOrder: ...

    async def capture(self, order_id: str, action: CaptureAction) -> str:
        """Make the capture; returns the provider's capture id."""
        ...

    async def refund(self, order_id: str, action: RefundAction) -> str:
        """Make the refund; returns the provider's refund id."""
        ...
