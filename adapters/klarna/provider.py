"""The PaymentProvider port implemented over Klarna/Kustom Order Management."""

from __future__ import annotations

from adapters.klarna.client import OrderManagementClient
from adapters.klarna.mapping import capture_request, provider_order, refund_request
from plugin.domain.actions import CaptureAction, RefundAction
from plugin.domain.provider import ProviderOrder


class KlarnaProvider:
    """Klarna and Kustom share this: only the client's host and credentials differ."""

    def __init__(self, client: OrderManagementClient) -> None:
        self._client = client

    async def get_order(self, order_id: str) -> ProviderOrder:
        return provider_order(await self._client.get_order(order_id))

    async def capture(self, order_id: str, action: CaptureAction) -> str:
        return await self._client.capture(order_id, capture_request(action), action.idempotency_key)

    async def refund(self, order_id: str, action: RefundAction) -> str:
        return await self._client.refund(order_id, refund_request(action), action.idempotency_key)
