"""The worker: claims due orders and brings each one in sync, one order at a time.

For one order: a fresh platform snapshot plus the provider's order -> plan -> actions
(sync.py) -> cancel requests -> outcomes reported to the platform. Transient failures are
retried with exponential backoff; after ``max_attempts`` the order is parked as "needs
attention" with the reason. A periodic sweep re-enqueues recently changed orders, so a
webhook that never arrived delays work but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from plugin.domain.actions import CaptureAction, idempotency_key
from plugin.domain.money import format_money
from plugin.service.ports import PaymentProvider, Platform, PlatformOrder, TransactionReport, WorkStore
from plugin.service.records import ChannelSettings, Installation, OrderJob, StoredRequest
from plugin.service.reporting import RefundRecord, capture_reports, refund_reports
from plugin.service.requests import refund_from_json
from plugin.service.sync import SyncResult, sync_order

log = logging.getLogger("kom.worker")

PlatformFactory = Callable[[Installation], Platform]
ProviderFactory = Callable[[ChannelSettings], PaymentProvider]


class Permanent(Exception):
    """A failure retrying will not fix (wrong credentials, order unknown to the provider...)."""

    def __init__(self, message: str, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id


@dataclass(frozen=True)
class WorkerConfig:
    lease: timedelta = timedelta(seconds=120)
    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(minutes=30)
    idle_sleep: float = 0.5
    sweep_every: timedelta = timedelta(minutes=10)


class Worker:
    def __init__(
        self,
        store: WorkStore,
        platforms: PlatformFactory,
        providers: ProviderFactory,
        *,
        config: WorkerConfig | None = None,
        worker_id: str | None = None,
        classify: Callable[[Exception], Permanent | None] = lambda _: None,
    ) -> None:
        self.store = store
        self.platforms = platforms
        self.providers = providers
        self.config = config or WorkerConfig()
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.classify = classify
        self._last_sweep: datetime | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; sleeps briefly whenever nothing is due."""
        log.info("worker %s started", self.worker_id)
        while not stop.is_set():
            try:
                await self.maybe_sweep()
                worked = await self.run_once()
            except Exception:  # the store itself failed: wait and go on
                log.exception("worker %s: could not claim work", self.worker_id)
                worked = False
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.idle_sleep)
        log.info("worker %s stopped", self.worker_id)

    async def run_once(self) -> bool:
        """Process one due order; False when nothing was due."""
        job = await self.store.claim(self.worker_id, self.config.lease)
        if job is None:
            return False
        await self.process(job)
        return True

    async def drain(self, limit: int = 1000) -> int:
        """Process due orders until none is left (tests, `kom worker --once`)."""
        count = 0
        while count < limit and await self.run_once():
            count += 1
        return count

    async def process(self, job: OrderJob) -> None:
        try:
            state, reason, provider_order_id = await self._sync(job)
        except Exception as exc:
            permanent = exc if isinstance(exc, Permanent) else self.classify(exc)
            give_up = permanent is not None or job.attempts >= self.config.max_attempts
            error = str(permanent or exc) or type(exc).__name__
            delay = min(self.config.base_delay * 2 ** max(job.attempts - 1, 0), self.config.max_delay)
            log.warning(
                "order %s: %s (attempt %d%s)",
                job.platform_order_id,
                error,
                job.attempts,
                ", needs attention" if give_up else f", retry in {delay.total_seconds():.0f}s",
                exc_info=permanent is None,
                extra=_context(job, permanent.correlation_id if permanent else None),
            )
            await self.store.retry_later(
                job,
                error=error,
                delay=delay,
                give_up=give_up,
                correlation_id=permanent.correlation_id if permanent else None,
            )
            return
        kept = await self.store.finish(job, state=state, reason=reason, provider_order_id=provider_order_id)
        log.info(
            "order %s: %s%s",
            job.platform_order_id,
            state,
            "" if kept else " (changed meanwhile, runs again)",
            extra=_context(job),
        )

    async def _sync(self, job: OrderJob) -> tuple[str, str | None, str | None]:
        installation = await self.store.installation(job.installation_id)
        if installation is None:
            return "in_sync", "The installation was removed.", None
        platform = self.platforms(installation)
        snapshot = await platform.fetch_order(job.platform_order_id)
        if snapshot.provider_order_id is None or snapshot.transaction_id is None:
            return "in_sync", "No Klarna/Kustom payment of KOM's on this order.", None
        settings = await self.store.settings_for(installation.id, snapshot.channel)
        if settings is None:
            raise Permanent(
                f"KOM is not configured for channel {snapshot.channel or '(default)'}: "
                "set the provider and credentials on the settings page or with `kom configure`."
            )
        requests = await self.store.requests_for(installation.id, job.platform_order_id)
        # Finished requests stay out of the plan: their refunds are on the provider's record
        # (and in the ledger) already, and a refused one was reported as failed.
        refunds = [r for r in requests if r.kind == "refund" and not r.done]
        charge_requested = any(r.kind == "charge" and not r.done for r in requests)
        order = replace(snapshot.order, refunds=tuple(refund_from_json(r.body) for r in refunds))
        provider = self.providers(settings)
        provider_id = snapshot.provider_order_id
        result = await sync_order(
            order, provider_id, provider, settings.policy(charge_requested=charge_requested)
        )
        # Re-read only when something changed: the read before acting is still current otherwise.
        state = result.state if not result.done and result.state else await provider.get_order(provider_id)
        reports = capture_reports(state, provider.portal_url(provider_id))
        records = [
            RefundRecord(r.request_id, r.psp_reference, r.body.get("amount")) for r in refunds if not r.done
        ]
        finished = refund_reports(state, records, result.refusals, provider.portal_url(provider_id))
        reports += [report for _, report in finished]
        cancels = [r for r in requests if r.kind == "cancel" and not r.done]
        reports += [await self._cancel(r, provider, provider_id, snapshot) for r in cancels]
        charges = [r for r in requests if r.kind == "charge" and not r.done]
        reports += [_close_charge(r, result, snapshot.order.currency) for r in charges]
        await self._report(installation, platform, snapshot, reports)
        done_ids = {r.request_id for r, _ in finished}
        await self.store.mark_done(
            [r.id for r in requests if r.request_id in done_ids or r.kind in {"cancel", "charge"}]
        )
        if result.refusals:
            return "needs_attention", " ".join(r.message for r in result.refusals), provider_id
        return "in_sync", None, provider_id

    async def _cancel(
        self, request: StoredRequest, provider: PaymentProvider, provider_id: str, snapshot: PlatformOrder
    ) -> TransactionReport:
        """Cancel what is left: the whole order before any capture, else release the rest."""
        state = await provider.get_order(provider_id)
        currency = snapshot.order.currency
        left = state.remaining_authorized_amount
        if left <= 0:
            message = "Nothing left to cancel: the authorization is fully captured or released."
            return TransactionReport("CANCEL_FAILURE", request.psp_reference, 0, currency, message)
        key = idempotency_key(provider_id, f"cancel:{request.request_id}")
        if state.captures:
            await provider.release_remaining_authorization(provider_id, key)
            message = f"Released the remaining authorization of {format_money(left, currency)}."
        else:
            await provider.cancel(provider_id, key)
            message = f"Cancelled the order; {format_money(left, currency)} released."
        return TransactionReport(
            "CANCEL_SUCCESS", request.psp_reference, left, currency, message, provider.portal_url(provider_id)
        )

    async def _report(
        self,
        installation: Installation,
        platform: Platform,
        snapshot: PlatformOrder,
        reports: list[TransactionReport],
    ) -> None:
        assert snapshot.transaction_id is not None
        done = await self.store.reported(installation.id, [r.psp_reference for r in reports])
        for report in reports:
            if (report.psp_reference, report.type) in done:
                continue
            await platform.report(snapshot.transaction_id, report)
            await self.store.add_report(
                installation.id, report.psp_reference, report.type, report.amount, report.message
            )
            log.info(
                "order %s: reported %s %s",
                snapshot.order.id,
                report.type,
                report.message,
                extra={"installation": installation.id, "order": snapshot.order.id},
            )

    async def maybe_sweep(self) -> None:
        now = self.store.clock()
        if self._last_sweep is not None and now - self._last_sweep < self.config.sweep_every:
            return
        since = (self._last_sweep or now - timedelta(days=1)) - timedelta(minutes=5)
        self._last_sweep = now
        await self.sweep(since)

    async def sweep(self, since: datetime) -> int:
        """Enqueue orders changed since ``since`` on every installation (lost webhooks)."""
        count = 0
        for installation in await self.store.installations():
            try:
                order_ids = await self.platforms(installation).recent_orders(since)
            except Exception:
                log.warning("sweep of %s failed; next sweep tries again", installation.api_url, exc_info=True)
                continue
            for order_id in order_ids:
                existing = await self.store.order_job(installation.id, order_id)
                if (
                    existing is None
                    or existing.state != "in_sync"
                    or existing.updated_at is None
                    or existing.updated_at < since
                ):
                    await self.store.touch_order(installation.id, order_id)
                    count += 1
        if count:
            log.info("sweep enqueued %d orders", count)
        return count


def _close_charge(request: StoredRequest, result: SyncResult, currency: str) -> TransactionReport:
    """Resolve a dashboard "capture" request: parcels were captured (and reported) one by one.

    Each parcel is its own invoice and its own charge on the platform, so the request
    itself is closed without an amount of its own, saying what was captured instead.
    """
    made = [d.action for d in result.done if isinstance(d.action, CaptureAction)]
    if made:
        listed = ", ".join(f"parcel {a.parcel} {format_money(a.captured_amount, currency)}" for a in made)
        message = f"Captured per parcel, each reported as its own charge: {listed}."
    else:
        message = (
            "Nothing to capture: no fulfilled parcel is waiting. KOM captures each parcel when it ships."
        )
    return TransactionReport("CHARGE_FAILURE", request.psp_reference, 0, currency, message)


def _context(job: OrderJob, correlation_id: str | None = None) -> dict[str, object]:
    """Log fields that let an operator follow one order (JSON logs, Sentry)."""
    context: dict[str, object] = {"installation": job.installation_id, "order": job.platform_order_id}
    if correlation_id:
        context["correlation_id"] = correlation_id
    return context
