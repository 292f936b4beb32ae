"""Composition root: builds the concrete adapters the use cases run with."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import httpx

from adapters.klarna.errors import AuthenticationFailed, NotFound, Rejected
from plugin.observability import authorization_event, in_flight
from plugin.service.connection import ConnectionResult, check_connection
from plugin.service.payment_sessions import CheckoutPayments, PaymentSessions
from plugin.service.ports import PaymentProvider, Platform
from plugin.service.records import ChannelSettings, Installation
from plugin.service.worker import Permanent, Worker, WorkerConfig
from plugin.settings import Settings
from plugin.store.store import Store


@dataclass
class Services:
    """Everything a request handler or the worker needs, created once per process."""

    settings: Settings
    store: Store
    http: httpx.AsyncClient
    extra: dict[str, object] = field(default_factory=dict)

    def provider(self, channel: ChannelSettings) -> PaymentProvider:
        factory = load_adapter("kom.providers", channel.provider)
        provider: PaymentProvider = factory(channel, self.http, self.settings)
        return provider

    def payments(self, channel: ChannelSettings) -> CheckoutPayments:
        """Checkout payments (Klarna Payments) of the channel's account (entry points ``kom.payments``)."""
        factory = load_adapter("kom.payments", channel.provider)
        payments: CheckoutPayments = factory(channel, self.http, self.settings)
        return payments

    def payment_sessions(self) -> PaymentSessions:
        return PaymentSessions(self.store, self.payments, self.provider)

    def platform(self, installation: Installation) -> Platform:
        factory = load_adapter("kom.platforms", installation.platform)
        platform: Platform = factory(installation, self.http)
        return platform

    async def check_connection(
        self, channel: ChannelSettings, *, http: httpx.AsyncClient | None = None, other_regions: bool = True
    ) -> ConnectionResult:
        """*Test connection* (the page and `kom configure --test`) through the provider's probe.

        ``http``: a client pinned to the checked address of a base-URL override (the page).
        """
        probe = load_adapter("kom.connection_probes", channel.provider)
        client = http or self.http

        async def run(settings: ChannelSettings) -> ConnectionResult:
            result: ConnectionResult = await probe(settings, client, other_regions=other_regions)
            return result

        return await check_connection(channel, run)

    def worker(self, config: WorkerConfig | None = None, worker_id: str | None = None) -> Worker:
        return Worker(
            self.store,
            self.platform,
            self.provider,
            config=config or worker_config(self.settings),
            worker_id=worker_id,
            classify=classify,
            observe_authorization=authorization_event,
            observe_in_flight=in_flight,
        )


def worker_config(settings: Settings) -> WorkerConfig:
    """The worker's lease, backoff and sweep from KOM_* settings (README, "Configuration")."""
    return WorkerConfig(
        lease=timedelta(seconds=settings.lease_seconds),
        base_delay=timedelta(seconds=settings.retry_base_seconds),
        max_delay=timedelta(seconds=settings.retry_max_seconds),
        sweep_every=timedelta(seconds=settings.sweep_interval_seconds),
        authorization_warning=timedelta(hours=settings.authorization_warning_hours),
        concurrency=settings.worker_concurrency,
    )


@functools.cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=group)}


def load_adapter(group: str, name: str) -> Any:
    """The factory a package registered under ``group`` (Python entry points), by name.

    KOM's own adapters register like a third party would (pyproject.toml), so a new
    platform or provider is a package to install, not a fork to maintain.
    """
    entry = _entry_points(group).get(name)
    if entry is None:
        known = ", ".join(sorted(_entry_points(group))) or "none"
        raise Permanent(f"No adapter {name!r} is installed for {group} (installed: {known}).")
    return entry.load()


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
    elif exc.status_code in (409, 429) or exc.status_code >= 500:
        return None  # 409: the same idempotency key is still in flight; 429: rate limited
    else:
        reason = refusal_sentence(exc)
    return Permanent(reason, correlation_id=exc.correlation_id)


def refusal_sentence(exc: Rejected) -> str:
    """``The provider refused the capture (capture not allowed, HTTP 403): <its words>.``

    The correlation id is not repeated here: it travels beside the reason (one id, shown once).
    """
    why = [exc.error_code.replace("_", " ").lower()] if exc.error_code else []
    why.append(f"HTTP {exc.status_code}")
    text = f"The provider refused the {exc.operation} ({', '.join(why)})"
    said = " ".join(m.strip() for m in exc.error_messages if m.strip())
    if said:
        text += f": {said}"
    return text if text.endswith(".") else text + "."
