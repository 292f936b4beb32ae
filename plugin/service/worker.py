"""The worker: claims due orders and brings each one in sync, one order at a time.

For one order: a fresh platform snapshot plus the provider's order -> plan -> each action
carried out on its own, its outcome recorded the moment the provider answers (sync.py) ->
cancel requests -> reports made from the records into an outbox -> each report sent on its
own. What was done is always reported, whatever failed after it; a report the platform
refuses is kept as refused and holds back no other.

Transient failures (of an action, a report or the whole pass) bring the order back with
exponential backoff; after ``max_attempts`` it is parked as "needs attention". Permanent
ones fail only what they belong to and are listed as needs attention. While a pass runs
its lease is renewed, so a short lease (20 s by default) only runs out when the worker
died; another worker then takes the order over. A periodic sweep re-plans every order the
platform changed lately, so a webhook that never arrived delays work but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from plugin.domain.actions import CaptureAction, RefundAction, idempotency_key
from plugin.domain.provider import ProviderOrder
from plugin.service.authorization import enqueue_expiring, keep_authorization
from plugin.service.crashpoints import crash_point
from plugin.service.ports import PaymentProvider, Platform, ReportRefused, WorkStore
from plugin.service.projection import after_pass
from plugin.service.records import ChannelSettings, Installation, OrderJob, Outcome, StoredRequest
from plugin.service.reporting import (
    adopt,
    available_actions,
    compose,
    failure_attention,
    lasting_attention,
    requested_cancel,
)
from plugin.service.requests import refund_from_json
from plugin.service.sync import Classify, Permanent, Record, SyncResult, sync_order

__all__ = ["Permanent", "Worker", "WorkerConfig"]

log = logging.getLogger("kom.worker")

PlatformFactory = Callable[[Installation], Platform]
ProviderFactory = Callable[[ChannelSettings], PaymentProvider]

# Sweeps overlap by this much, so a change stamped just before the last sweep (or by a
# platform clock a little behind KOM's) is still seen.
SWEEP_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class WorkerConfig:
    lease: timedelta = timedelta(seconds=20)
    """How long a claim lasts without renewal; renewed every third of it while a pass runs."""
    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(minutes=30)
    idle_sleep: float = 0.5
    concurrency: int = 8
    """KOM_WORKER_CONCURRENCY: orders one worker process works on at once (``run``)."""
    sweep_every: timedelta = timedelta(minutes=10)
    sweep_lookback: timedelta = timedelta(days=1)
    """How far back the first sweep after start looks."""
    authorization_warning: timedelta = timedelta(hours=48)
    """KOM_AUTHORIZATION_WARNING_HOURS: warn (or extend) this long before an authorization expires."""


@dataclass
class PassOutcome:
    state: str = "in_sync"
    reason: str | None = None
    provider_order_id: str | None = None
    retry: list[str] = field(default_factory=list)
    """Transient problems: the order comes back after a backoff."""
    correlation_id: str | None = None
    """The provider's id of the call behind the first permanent failure (for its support)."""


class Worker:
    def __init__(
        self,
        store: WorkStore,
        platforms: PlatformFactory,
        providers: ProviderFactory,
        *,
        config: WorkerConfig | None = None,
        worker_id: str | None = None,
        classify: Classify = lambda _: None,
        observe_authorization: Callable[[str], None] = lambda _: None,
        observe_in_flight: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.platforms = platforms
        self.providers = providers
        self.config = config or WorkerConfig()
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.classify = classify
        self.observe_authorization = observe_authorization
        self.observe_in_flight = observe_in_flight
        """Called with +1 when a pass starts and -1 when it ends (a gauge of passes in flight)."""
        self._last_sweep: datetime | None = None
        self._claims = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, on up to ``config.concurrency`` orders at once.

        Each pass holds its own lease (claimed under a token of its own, renewed by its own
        heartbeat), so the claim rules that keep two processes off one order also keep two
        passes of this process apart. On ``stop`` nothing more is claimed and the passes in
        flight finish (a graceful shutdown loses no pass half-way).
        """
        log.info("worker %s started (%d orders at once)", self.worker_id, self.config.concurrency)
        slots = asyncio.Semaphore(self.config.concurrency)
        passes: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                await slots.acquire()
                job = None
                if not stop.is_set():
                    try:
                        await self.maybe_sweep()
                        job = await self.store.claim(self._lease_token(), self.config.lease)
                    except Exception:  # the store itself failed: wait and go on
                        log.exception("worker %s: could not claim work", self.worker_id)
                if job is None:
                    slots.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.config.idle_sleep)
                    continue
                task = asyncio.create_task(self._pass(job, slots))
                passes.add(task)
                task.add_done_callback(passes.discard)
        finally:
            if passes:
                log.info("worker %s: letting %d passes finish", self.worker_id, len(passes))
                await asyncio.gather(*passes, return_exceptions=True)
        log.info("worker %s stopped", self.worker_id)

    async def _pass(self, job: OrderJob, slots: asyncio.Semaphore) -> None:
        self.observe_in_flight(1)
        try:
            await self.process(job)
        except Exception:  # the store failed while finishing: the lease runs out, the order comes back
            log.exception("order %s: the pass failed", job.platform_order_id, extra=_context(job))
        finally:
            self.observe_in_flight(-1)
            slots.release()

    def _lease_token(self) -> str:
        """A lease owner of its own for each claim: a pass whose lease ran out cannot renew it
        once another pass (of any process, this one included) took the order over."""
        self._claims += 1
        return f"{self.worker_id}/{self._claims}"

    async def run_once(self) -> bool:
        """Process one due order; False when nothing was due."""
        job = await self.store.claim(self._lease_token(), self.config.lease)
        if job is None:
            return False
        self.observe_in_flight(1)
        try:
            await self.process(job)
        finally:
            self.observe_in_flight(-1)
        return True

    async def drain(self, limit: int = 1000) -> int:
        """Process due orders until none is left (tests, `kom worker --once`)."""
        count = 0
        while count < limit and await self.run_once():
            count += 1
        return count

    async def process(self, job: OrderJob) -> None:
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job, lost))
        try:
            outcome = await self._sync(job)
        except Exception as exc:
            permanent = exc if isinstance(exc, Permanent) else self.classify(exc)
            error = str(permanent or exc) or type(exc).__name__
            if not lost.is_set():
                await self._retry_later(job, [error], permanent, exc_info=permanent is None)
            return
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if lost.is_set():
            log.warning("order %s: lease lost during the pass; left to its new holder", job.platform_order_id)
            return
        if outcome.retry:
            await self._retry_later(job, outcome.retry, None)
            return
        kept = await self.store.finish(
            job,
            state=outcome.state,
            reason=outcome.reason,
            provider_order_id=outcome.provider_order_id,
            correlation_id=outcome.correlation_id,
        )
        log.info(
            "order %s: %s%s",
            job.platform_order_id,
            outcome.state,
            "" if kept else " (changed meanwhile, runs again)",
            extra=_context(job),
        )

    async def _retry_later(
        self,
        job: OrderJob,
        errors: list[str],
        permanent: Permanent | None,
        *,
        exc_info: bool = False,
    ) -> None:
        give_up = permanent is not None or job.attempts >= self.config.max_attempts
        error = " ".join(dict.fromkeys(errors))
        delay = min(self.config.base_delay * 2 ** max(job.attempts - 1, 0), self.config.max_delay)
        correlation_id = permanent.correlation_id if permanent else None
        log.warning(
            "order %s: %s (attempt %d%s)",
            job.platform_order_id,
            error,
            job.attempts,
            ", needs attention" if give_up else f", retry in {delay.total_seconds():g}s",
            exc_info=exc_info,
            extra=_context(job, correlation_id),
        )
        await self.store.retry_later(
            job, error=error, delay=delay, give_up=give_up, correlation_id=correlation_id
        )

    async def _heartbeat(self, job: OrderJob, lost: asyncio.Event) -> None:
        """Renew the lease while the pass runs; a worker that died stops renewing it."""
        while True:
            await asyncio.sleep(self.config.lease.total_seconds() / 3)
            try:
                held = await self.store.renew(job, job.lease_owner or self.worker_id, self.config.lease)
            except Exception:  # the database hiccuped: the next beat tries again
                log.warning("order %s: could not renew the lease", job.platform_order_id, exc_info=True)
                continue
            if not held:
                lost.set()
                return

    async def _sync(self, job: OrderJob) -> PassOutcome:
        installation = await self.store.installation(job.installation_id)
        if installation is None:
            return PassOutcome(reason="The installation was removed.")
        platform = self.platforms(installation)
        snapshot = await platform.fetch_order(job.platform_order_id)
        if snapshot.provider_order_id is None or snapshot.transaction_id is None:
            return PassOutcome(reason="No Klarna/Kustom payment of KOM's on this order.")
        settings = await self.store.settings_for(installation.id, snapshot.channel)
        if settings is None:
            raise Permanent(
                f"KOM is not configured for channel {snapshot.channel or '(default)'}: "
                "set the provider and credentials on the settings page or with `kom configure`."
            )
        requests = await self.store.requests_for(installation.id, job.platform_order_id)
        # Finished requests stay out of the plan: their refunds are on the provider's record
        # (and in the ledger) already, and a refused one was answered as failed.
        open_requests = [r for r in requests if not r.done]
        refunds = [r for r in open_requests if r.kind == "refund"]
        charge_requested = any(r.kind == "charge" for r in open_requests)
        order = replace(snapshot.order, refunds=tuple(refund_from_json(r.body) for r in refunds))
        provider = self.providers(settings)
        provider_id = snapshot.provider_order_id

        async def record(outcome: Outcome) -> None:
            await self.store.record_outcome(installation.id, job.platform_order_id, provider_id, outcome)

        known = await self.store.outcomes(installation.id, provider_id)
        result = await sync_order(
            order,
            provider_id,
            provider,
            settings.policy(charge_requested=charge_requested),
            record=record,
            classify=self.classify,
            refused={o.key: o for o in known if o.status == "failed"},
        )
        assert result.state is not None
        # Captures and refunds made before a crash that kept KOM from recording them.
        for adopted in adopt(result.state, known, [r.request_id for r in requests]):
            await record(adopted)
        # No re-read for amounts: the read before acting plus the provider's answers to the
        # writes. Only a new capture is read back, for its invoice number in Saleor's message.
        state = after_pass(result.state, result)
        if any(isinstance(d.action, CaptureAction) for d in result.done):
            state = await self._fresh(provider, provider_id, result, state)
        retry = [f"{_what(f.action)}: {f.reason}" for f in result.transient]
        recorded = {o.key: o for o in await self.store.outcomes(installation.id, provider_id)}
        for request in (r for r in open_requests if r.kind == "cancel"):
            earlier = recorded.get(f"cancel:{request.request_id}")
            if earlier is None or earlier.status == "started":
                problem = await self._cancel(request, provider, provider_id, result, earlier, record)
                if problem:
                    retry.append(problem)

        await keep_authorization(
            self.store,
            provider,
            installation_id=installation.id,
            order=snapshot.order,
            state=state,
            extend=settings.extend_authorization,
            window=self.config.authorization_warning,
            now=self.store.clock(),
            observe=self.observe_authorization,
        )
        outcomes = await self.store.outcomes(installation.id, provider_id)
        composed = compose(
            outcomes,
            open_requests,
            result,
            state,
            snapshot.transaction_id,
            provider.portal_url(provider_id),
            settings.provider.capitalize(),
        )
        for rest in composed.rests:
            await record(rest)
        await self.store.queue_reports(
            installation.id, job.platform_order_id, composed.reports, [r.id for r in composed.finished]
        )
        crash_point("reports-queued")
        actions = available_actions(state, manual_capture=settings.capture_mode == "manual")
        retry += await self._send_reports(installation, platform, job, (snapshot.transaction_id, actions))

        attention = [r.message for r in result.refusals]
        attention += failure_attention(result, state.currency)
        attention += lasting_attention([*outcomes, *composed.rests], state)
        attention += [
            r.error or f"The platform did not record the outcome {r.report.psp_reference}."
            for r in await self.store.order_reports(installation.id, job.platform_order_id)
            if r.state == "refused"
        ]
        correlation_id = next((f.correlation_id for f in result.failed if f.correlation_id), None)
        if attention:
            reason = " ".join(dict.fromkeys(attention))
            return PassOutcome("needs_attention", reason, provider_id, retry, correlation_id)
        return PassOutcome("in_sync", None, provider_id, retry)

    async def _fresh(
        self, provider: PaymentProvider, provider_id: str, result: SyncResult, projected: ProviderOrder
    ) -> ProviderOrder:
        """The provider's order after a capture, for the invoice number in messages. The records
        stay the truth: a read that lags behind a write changes no amount."""
        if not result.done:
            return projected
        try:
            return await provider.get_order(provider_id)
        except Exception:
            log.info("re-read of %s failed; messages use KOM's own record", provider_id, exc_info=True)
            return projected

    async def _cancel(
        self,
        request: StoredRequest,
        provider: PaymentProvider,
        provider_id: str,
        result: SyncResult,
        earlier: Outcome | None,
        record: Record,
    ) -> str | None:
        """Cancel what is left: the whole order before any capture, else release the rest.

        Carried out with its own idempotency key, even after a crash (the same call as the
        intent recorded then): the provider replays its first answer, so KOM never guesses
        what an earlier attempt did. Worked out from the read before this pass's captures
        and their recorded amounts, so a re-read lagging behind them changes nothing.
        Returns the problem when the order must come back later.
        """
        key = f"cancel:{request.request_id}"
        if result.captures_pending:
            return f"{key}: waits until the parcels are captured"
        before = result.state
        assert before is not None
        made = [d.action for d in result.done if isinstance(d.action, CaptureAction)]
        started = earlier or Outcome(
            key,
            "release" if before.captures or made else "cancel",
            "started",
            before.remaining_authorized_amount - sum(a.captured_amount for a in made)
            or requested_cancel(request, before.currency),
            request_id=request.request_id,
        )
        kind = started.kind
        await record(started)
        crash_point("action-started")
        try:
            if kind == "release":
                await provider.release_remaining_authorization(provider_id, idempotency_key(provider_id, key))
            else:
                await provider.cancel(provider_id, idempotency_key(provider_id, key))
        except Exception as exc:
            crash_point("provider-answered")
            permanent = self.classify(exc)
            if permanent is None:
                return f"{key}: {exc or type(exc).__name__}"
            await record(
                replace(
                    started, status="failed", message=str(permanent), correlation_id=permanent.correlation_id
                )
            )
            return None
        crash_point("provider-answered")
        await record(replace(started, status="done", provider_id=key))
        crash_point("outcome-recorded")
        return None

    async def _send_reports(
        self,
        installation: Installation,
        platform: Platform,
        job: OrderJob,
        actions: tuple[str, tuple[str, ...]] | None = None,
    ) -> list[str]:
        """Send each pending report on its own; the transient problems (the order comes back).

        ``actions``: (transaction id, the buttons its payment should offer now), set with
        every report on that transaction."""
        problems = []
        for queued in await self.store.order_reports(installation.id, job.platform_order_id):
            if queued.state != "pending" or queued.id is None:
                continue
            report = queued.report
            buttons = actions[1] if actions and actions[0] == queued.transaction_id else None
            try:
                await platform.report(queued.transaction_id, report, buttons)
            except ReportRefused as exc:
                log.warning(
                    "order %s: %s refused: %s", job.platform_order_id, report.type, exc, extra=_context(job)
                )
                await self.store.report_refused(queued.id, str(exc))
                continue
            except Exception as exc:
                problems.append(f"report {report.type} {report.psp_reference}: {exc or type(exc).__name__}")
                continue
            crash_point("report-sent")
            await self.store.report_sent(queued.id)
            log.info(
                "order %s: reported %s %s",
                job.platform_order_id,
                report.type,
                report.message,
                extra=_context(job),
            )
        return problems

    async def maybe_sweep(self) -> None:
        now = self.store.clock()
        if self._last_sweep is not None and now - self._last_sweep < self.config.sweep_every:
            return
        since = (self._last_sweep or now - self.config.sweep_lookback) - SWEEP_OVERLAP
        self._last_sweep = now
        await self.sweep(since)
        await enqueue_expiring(self.store, now=now, window=self.config.authorization_warning)

    async def sweep(self, since: datetime) -> int:
        """Re-plan every order the platform changed since ``since``, on every installation.

        The platform's own change time decides, not KOM's: an order KOM synced a minute ago
        whose next webhook was lost is listed too. Planning is idempotent, so re-planning an
        order that is in sync costs two reads and changes nothing.
        """
        count = 0
        for installation in await self.store.installations():
            try:
                order_ids = await self.platforms(installation).recent_orders(since)
            except Exception:
                log.warning("sweep of %s failed; next sweep tries again", installation.api_url, exc_info=True)
                continue
            # Together: the store writes hints that arrive at once in one transaction.
            await asyncio.gather(
                *(self.store.touch_order(installation.id, order_id) for order_id in order_ids)
            )
            count += len(order_ids)
        if count:
            log.info("sweep re-planned %d orders", count)
        return count


def _what(action: object) -> str:
    """An action as the merchant knows it (its key is for KOM: ``kom:s:<fulfillment id>``)."""
    if isinstance(action, CaptureAction):
        return f"Capture of parcel {action.parcel}"
    if isinstance(action, RefundAction):
        return "Refund"
    return "Update"


def _context(job: OrderJob, correlation_id: str | None = None) -> dict[str, object]:
    """Log fields that let an operator follow one order (JSON logs, Sentry)."""
    context: dict[str, object] = {"installation": job.installation_id, "order": job.platform_order_id}
    if correlation_id:
        context["correlation_id"] = correlation_id
    return context
