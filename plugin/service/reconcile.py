"""`kom reconcile`: each open order, the platform's side against the provider's.

For every order in scope (one order; or every order the platform changed since ``since``
plus every order KOM tracked since then) on every installation in scope: a fresh platform
snapshot, the refund requests KOM recorded and has not finished, the provider's order ->
``findings.compare``. Read-only towards platform and provider; the findings are stored as
needs-attention items (replacing the order's previous reconcile findings) so the dashboard
shows what the terminal shows. A failure to read one order is a finding about that order,
never the end of the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from plugin.service.findings import SOURCE, Context, Kind, compare
from plugin.service.ports import PaymentProvider, Platform
from plugin.service.records import ChannelSettings, FindingRecord, Installation, OrderJob, StoredRequest
from plugin.service.requests import refund_from_json

log = logging.getLogger("kom.reconcile")

PlatformFactory = Callable[[Installation], Platform]
ProviderFactory = Callable[[ChannelSettings], PaymentProvider]
_PAGE = 200


class ReconcileStore(Protocol):
    """What reconcile reads and writes in KOM's database (plugin.store.store.Store)."""

    async def installations(self) -> list[Installation]: ...

    async def settings_for(self, installation_id: int, channel: str | None) -> ChannelSettings | None: ...

    async def requests_for(
        self, installation_id: int, platform_order_id: str, *, kind: str | None = None
    ) -> list[StoredRequest]: ...

    async def order_job(self, installation_id: int, platform_order_id: str) -> OrderJob | None: ...

    async def order_jobs(
        self,
        installation_id: int | None = None,
        *,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[OrderJob]: ...

    async def replace_findings(
        self, installation_id: int, platform_order_id: str, source: str, findings: Sequence[FindingRecord]
    ) -> None: ...


class ScopeError(ValueError):
    """The installation or order asked for is not one KOM knows."""


@dataclass(frozen=True)
class OrderCheck:
    installation_id: int
    api_url: str
    order_id: str
    order_number: str | None = None
    provider_order_id: str | None = None
    expires_at: datetime | None = None
    findings: tuple[FindingRecord, ...] = ()
    skipped: str | None = None
    """Why the order was not compared (it has no payment of KOM's)."""


@dataclass
class Report:
    checks: list[OrderCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Installation-wide failures (its order list could not be read)."""

    @property
    def findings(self) -> list[tuple[OrderCheck, FindingRecord]]:
        return [(check, finding) for check in self.checks for finding in check.findings]

    @property
    def clean(self) -> bool:
        return not self.problems and not any(check.findings for check in self.checks)


@dataclass(frozen=True)
class Scope:
    installation: str | None = None
    """An installation's id or platform API URL; None: all."""
    order: str | None = None
    """One platform order id; None: every order changed since ``since``."""
    since: datetime | None = None


async def reconcile(
    store: ReconcileStore,
    platforms: PlatformFactory,
    providers: ProviderFactory,
    scope: Scope,
    *,
    now: datetime,
    window: timedelta,
    save: bool = True,
    concurrency: int = 8,
) -> Report:
    report = Report()
    since = scope.since or now - timedelta(days=30)
    # A few orders at a time: each check mostly waits on two remote reads (platform, provider).
    gate = asyncio.Semaphore(concurrency)
    for installation in await _installations(store, scope):
        platform = platforms(installation)
        if scope.order is not None:
            order_ids = [scope.order]
        else:
            order_ids = await _order_ids(store, platform, installation, since, report)
        checks = [
            _checked(gate, store, platform, providers, installation, order_id, now, window, save)
            for order_id in order_ids
        ]
        report.checks += await asyncio.gather(*checks)
    log.info(
        "reconciled %d orders: %d findings, %d problems",
        len(report.checks),
        len(report.findings),
        len(report.problems),
    )
    return report


async def _checked(
    gate: asyncio.Semaphore,
    store: ReconcileStore,
    platform: Platform,
    providers: ProviderFactory,
    installation: Installation,
    order_id: str,
    now: datetime,
    window: timedelta,
    save: bool,
) -> OrderCheck:
    async with gate:
        check = await check_order(store, platform, providers, installation, order_id, now=now, window=window)
        if save:
            await store.replace_findings(installation.id, order_id, SOURCE, check.findings)
        return check


async def _installations(store: ReconcileStore, scope: Scope) -> list[Installation]:
    every = await store.installations()
    if scope.installation is not None:
        chosen = [i for i in every if scope.installation in (str(i.id), i.api_url)]
        if not chosen:
            raise ScopeError(f"no installation {scope.installation!r} (give its id or its API URL)")
        return chosen
    if scope.order is None or len(every) <= 1:
        return every
    tracking = [i for i in every if await store.order_job(i.id, scope.order) is not None]
    if not tracking:
        raise ScopeError(
            f"KOM does not track order {scope.order!r}: name its installation with --installation"
        )
    return tracking


async def _order_ids(
    store: ReconcileStore, platform: Platform, installation: Installation, since: datetime, report: Report
) -> list[str]:
    """Orders the platform changed since ``since``, then the ones KOM worked on since then."""
    ids: list[str] = []
    try:
        ids += await platform.recent_orders(since)
    except Exception as exc:  # the orders KOM tracks are still checked
        report.problems.append(f"{installation.api_url}: could not list recently changed orders: {exc}")
    offset = 0
    while True:  # newest first: stop at the first page that reaches back before ``since``
        jobs = await store.order_jobs(installation.id, limit=_PAGE, offset=offset)
        ids += [j.platform_order_id for j in jobs if j.updated_at is None or j.updated_at >= since]
        if len(jobs) < _PAGE or any(j.updated_at is not None and j.updated_at < since for j in jobs):
            break
        offset += _PAGE
    return list(dict.fromkeys(ids))


async def check_order(
    store: ReconcileStore,
    platform: Platform,
    providers: ProviderFactory,
    installation: Installation,
    order_id: str,
    *,
    now: datetime,
    window: timedelta,
) -> OrderCheck:
    check = OrderCheck(installation.id, installation.api_url, order_id)

    def problem(kind: Kind, detail: str, action: str) -> OrderCheck:
        finding = FindingRecord(order_id, kind.value, detail, action, SOURCE, check.order_number)
        return replace(check, findings=(finding,))

    try:
        snapshot = await platform.fetch_order(order_id)
    except Exception as exc:
        return problem(
            Kind.UNREADABLE,
            f"KOM could not read the order from {installation.platform}: {exc}",
            "Check that the order exists and KOM's app still has its permissions.",
        )
    check = replace(check, order_number=snapshot.order.number, provider_order_id=snapshot.provider_order_id)
    if snapshot.provider_order_id is None or snapshot.transaction_id is None:
        return replace(check, skipped="no Klarna/Kustom payment of KOM's")
    settings = await store.settings_for(installation.id, snapshot.channel)
    if settings is None:
        return problem(
            Kind.NOT_CONFIGURED,
            f"KOM has no provider settings for channel {snapshot.channel or '(default)'}.",
            "Set the provider and its credentials on KOM's settings page or with `kom configure`.",
        )
    try:
        state = await providers(settings).get_order(snapshot.provider_order_id)
    except Exception as exc:
        return problem(
            Kind.UNREADABLE,
            f"KOM could not read provider order {snapshot.provider_order_id}: {exc}",
            "Check the channel's credentials, environment and region (Test connection on KOM's page).",
        )
    requests = await store.requests_for(installation.id, order_id)
    pending = [r for r in requests if r.kind == "refund" and not r.done]
    order = replace(snapshot.order, refunds=tuple(refund_from_json(r.body) for r in pending))
    context = Context(settings, now, window, charged=snapshot.charged, refunds_pending=bool(pending))
    return replace(check, expires_at=state.expires_at, findings=tuple(compare(order, state, context)))
