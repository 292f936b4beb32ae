"""Composition root: builds the concrete adapters the use cases run with."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.errors import AuthenticationFailed, NotAllowed, NotFound, Rejected
from adapters.klarna.hosts import Environment, Provider, Region, base_url, portal_url
from adapters.klarna.provider import KlarnaProvider
from plugin.service.ports import PaymentProvider, Platform
from plugin.service.worker import Permanent, Worker, WorkerConfig
from plugin.settings import Settings
from plugin.store.store import ChannelSettings, Installation, Store


@dataclass
class Services:
    """Everything a request handler or the worker needs, created once per process."""

    settings: Settings
    store: Store
    http: httpx.AsyncClient
    extra: dict[str, object] = field(default_factory=dict)

    def provider(self, channel: ChannelSettings) -> PaymentProvider:
        client = OrderManagementClient(
            base_url=base_url(
                Provider(channel.provider),
                Environment(channel.environment),
                Region(channel.region),
                channel.base_url,
            ),
            api_key=channel.api_key,
            username=channel.username,
            http_client=self.http,
            retry=RetryPolicy(max_attempts=self.settings.provider_max_attempts),
            timeout=self.settings.provider_timeout_seconds,
        )
        return KlarnaProvider(
            client, portal_url(Provider(channel.provider), Environment(channel.environment))
        )

    def platform(self, installation: Installation) -> Platform:
        from adapters.saleor.platform import SaleorPlatform

        return SaleorPlatform.for_installation(installation, self.http)

    def worker(self, config: WorkerConfig | None = None, worker_id: str | None = None) -> Worker:
        return Worker(
            self.store, self.platform, self.provider, config=config, worker_id=worker_id, classify=classify
        )


def classify(exc: Exception) -> Permanent | None:
    """Failures that retrying will not change, as a reason a merchant can act on."""
    from adapters.saleor.client import OrderNotFound
    from adapters.saleor.snapshot import SnapshotError

    if isinstance(exc, OrderNotFound):
        return Permanent("Saleor no longer has this order.")
    if isinstance(exc, SnapshotError):
        return Permanent(f"KOM cannot read this Saleor order: {exc}")
    if not isinstance(exc, Rejected):
        return None
    if isinstance(exc, AuthenticationFailed):
        reason = "The provider rejected KOM's credentials (HTTP 401): check the API key and region."
    elif isinstance(exc, NotFound):
        reason = "The provider does not know this order (HTTP 404): check environment and region."
    elif isinstance(exc, NotAllowed):
        reason = f"The provider refused: {exc}"
    elif exc.status_code == 429 or exc.status_code >= 500:
        return None
    else:
        reason = f"The provider rejected a request: {exc}"
    return Permanent(reason, correlation_id=exc.correlation_id)
