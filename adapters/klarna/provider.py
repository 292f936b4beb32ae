"""The PaymentProvider port implemented over Klarna/Kustom Order Management."""

from __future__ import annotations

import uuid

import httpx

from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.hosts import Environment, Provider, Region, base_url, portal_url
from adapters.klarna.mapping import capture_request, provider_order, refund_request, shipping_info
from adapters.klarna.pacing import DOCUMENTED_LIMITS, bucket_for
from plugin.domain.actions import CaptureAction, RefundAction
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import Tracking
from plugin.observability import pacing_wait
from plugin.service.records import ChannelSettings
from plugin.settings import Settings


class KlarnaProvider:
    """Klarna and Kustom share this: only the client's host and credentials differ."""

    def __init__(self, client: OrderManagementClient, portal: str | None = None) -> None:
        self._client = client
        self._portal = portal

    async def get_order(self, order_id: str) -> ProviderOrder:
        return provider_order(await self._client.get_order(order_id))

    async def capture(self, order_id: str, action: CaptureAction) -> str:
        return await self._client.capture(order_id, capture_request(action), action.idempotency_key)

    async def refund(self, order_id: str, action: RefundAction) -> str:
        return await self._client.refund(order_id, refund_request(action), action.idempotency_key)

    async def add_shipping_info(
        self, order_id: str, capture_id: str, tracking: Tracking, idempotency_key: uuid.UUID
    ) -> None:
        info = shipping_info(tracking)
        if info:  # a parcel without carrier or number has nothing to add
            await self._client.add_shipping_info(order_id, capture_id, info, idempotency_key)

    async def cancel(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        await self._client.cancel(order_id, idempotency_key)

    async def release_remaining_authorization(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        await self._client.release_remaining_authorization(order_id, idempotency_key)

    async def extend_authorization(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        await self._client.extend_authorization_time(order_id, idempotency_key)

    def portal_url(self, order_id: str) -> str | None:
        return self._portal


def from_settings(channel: ChannelSettings, http: httpx.AsyncClient, settings: Settings) -> KlarnaProvider:
    """The provider for one merchant's channel settings (entry points ``kom.providers``: klarna, kustom)."""
    provider, environment = Provider(channel.provider), Environment(channel.environment)
    endpoint = base_url(provider, environment, Region(channel.region), channel.base_url)
    rate = settings.provider_rate_limit or DOCUMENTED_LIMITS.get(channel.environment, 50.0)
    credentials = f"{channel.username or ''}:{channel.api_key}"
    client = OrderManagementClient(
        base_url=endpoint,
        api_key=channel.api_key,
        username=channel.username,
        http_client=http,
        retry=RetryPolicy(
            max_attempts=settings.provider_max_attempts,
            rate_limit_patience=settings.provider_rate_limit_patience_seconds,
        ),
        timeout=settings.provider_timeout_seconds,
        pacer=bucket_for(http, endpoint, credentials, rate, observe=pacing_wait),
    )
    return KlarnaProvider(client, portal_url(provider, environment))
