"""Sync one order: read the provider, plan, carry out each action on its own.

Always reads the provider first (Klarna keeps idempotency keys for 24 h only, and a capture
made before a crash must be seen, not repeated). Each action's outcome is handed to
``record`` the moment the provider answers, before anything else happens. A failure holds
back only what depends on it:

- a permanent failure (``classify`` says retrying will not help: the provider refused with
  a 4xx other than 409/429) fails that action; a transient one leaves it to the next pass;
- captures are independent of each other: a parcel's line references carry a number no
  other capture of the order uses (plugin/domain/captures.py numbers a parcel after every
  number on record), so a parcel that was not captured holds back no later parcel;
- a refund out of a capture planned in this pass waits for that capture;
- a platform refund split into several refunds goes out whole or stops: after a part fails
  permanently the rest is not sent (the request is answered with what moved); when a part
  must wait after another part went out, every later refund waits too (the planner
  finishes a partly sent refund before it starts another);
- releasing the authorization goes last, and waits while a capture may still happen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from plugin.domain.actions import (
    Action,
    CaptureAction,
    Plan,
    RefundAction,
    Refusal,
    ReleaseAction,
    ShippingInfoAction,
)
from plugin.domain.plan import plan
from plugin.domain.policy import Policy
from plugin.domain.provider import ProviderOrder
from plugin.domain.references import REFUND_PREFIX, refund_reference_prefix
from plugin.domain.snapshot import Order
from plugin.service.adoption import adopt_foreign_captures
from plugin.service.crashpoints import crash_point
from plugin.service.ports import PaymentProvider
from plugin.service.records import Outcome

log = logging.getLogger("kom.sync")


class Permanent(Exception):
    """A failure retrying will not fix (wrong credentials, order unknown to the provider...)."""

    def __init__(self, message: str, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id


Record = Callable[[Outcome], Awaitable[None]]
Classify = Callable[[Exception], Permanent | None]


@dataclass(frozen=True)
class Done:
    action: Action
    provider_id: str


@dataclass(frozen=True)
class Failed:
    action: Action
    reason: str
    correlation_id: str | None = None


@dataclass
class SyncResult:
    done: list[Done] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    """Refused by the provider, in this pass or recorded as refused before (not tried again)."""
    transient: list[Failed] = field(default_factory=list)
    """Failed in a way the next pass may fix (5xx, timeout, lost answer, 409, 429)."""
    waiting: list[tuple[Action, str]] = field(default_factory=list)
    """Not tried: they depend on something that did not happen (with why)."""
    refusals: list[Refusal] = field(default_factory=list)
    actions: tuple[Action, ...] = ()
    state: ProviderOrder | None = None
    """The provider order as read before acting (still current when nothing was done)."""
    captures_pending: bool = False
    """A capture may still happen on a later pass: nothing may release the authorization yet."""
    settled: tuple[str, ...] = ()
    """Refund requests that need no provider refund (only goods worth nothing came back)."""

    @property
    def in_sync(self) -> bool:
        return not (self.refusals or self.failed or self.transient or self.waiting)


def outcome_key(action: Action) -> str:
    """How the outcome of ``action`` is recorded: by the reference the provider's record
    shows for captures and refunds (so a crash before recording is recognised), else by key."""
    return action.reference if isinstance(action, CaptureAction | RefundAction) else action.key


def outcome_of(
    action: Action,
    status: str,
    provider_id: str | None = None,
    message: str | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    key = outcome_key(action)
    if isinstance(action, CaptureAction):
        return Outcome(
            key, "capture", status, action.captured_amount, provider_id, parcel=action.parcel,
            message=message, correlation_id=correlation_id,
        )  # fmt: skip
    if isinstance(action, RefundAction):
        return Outcome(
            key, "refund", status, action.refunded_amount, provider_id, request_id=action.request_id,
            parcel=action.parcel, capture=action.capture, automatic=action.automatic, message=message,
            correlation_id=correlation_id,
        )  # fmt: skip
    if isinstance(action, ShippingInfoAction):
        return Outcome(
            key, "shipping_info", status, 0, action.capture, parcel=action.parcel, message=message,
            correlation_id=correlation_id,
        )  # fmt: skip
    kind = "cancel" if action.cancel else "release"
    return Outcome(
        key, kind, status, action.amount, provider_id, message=message, correlation_id=correlation_id
    )


async def _nothing(_: Outcome) -> None:
    return None


async def sync_order(
    order: Order,
    provider_order_id: str,
    provider: PaymentProvider,
    policy: Policy | None = None,
    *,
    record: Record = _nothing,
    classify: Classify = lambda _: None,
    refused: Mapping[str, Outcome] | None = None,
) -> SyncResult:
    """Bring the provider order in line with the platform order, action by action.

    Only the first read propagates its error (without it there is no plan). ``refused``:
    outcomes recorded as refused earlier, by key; those actions are not sent again (an
    operator's "Retry now" clears them).
    """
    state = await provider.get_order(provider_order_id)
    # A capture made elsewhere that holds exactly one parcel's goods stands for that parcel.
    planned = (
        await asyncio.to_thread(_plan, order, state, policy)
        if _large(order, state)
        else _plan(order, state, policy)
    )
    for refusal in planned.refusals:
        log.warning(
            "refused %s %s on order %s: %s",
            refusal.subject,
            refusal.subject_id,
            order.id,
            refusal.message,
            extra={"order": order.id, "provider_order": provider_order_id},
        )
    return await execute(planned, state, provider, record=record, classify=classify, refused=refused)


OFF_LOOP_SIZE = 200
"""Orders with more lines, parcels and refunds than this are planned in a worker thread: a
plan is pure CPU, and on the event loop it would stall every other pass of the process."""


def _large(order: Order, state: ProviderOrder) -> bool:
    size = len(order.lines) + len(order.shipments) + len(order.refunds)
    return size + len(state.captures) + len(state.refunds) > OFF_LOOP_SIZE


def _plan(order: Order, state: ProviderOrder, policy: Policy | None) -> Plan:
    return plan(adopt_foreign_captures(order, state).order, state, policy)


async def execute(
    planned: Plan,
    state: ProviderOrder,
    provider: PaymentProvider,
    *,
    record: Record = _nothing,
    classify: Classify = lambda _: None,
    refused: Mapping[str, Outcome] | None = None,
) -> SyncResult:
    """Carry out a plan made from ``state``, each action on its own (see the module's notes)."""
    provider_order_id = state.order_id
    result = SyncResult(
        refusals=list(planned.refusals), actions=planned.actions, state=state, settled=planned.settled
    )
    context = {"provider_order": provider_order_id}
    run = _Run(result, state, refused or {})
    releases = [a for a in planned.actions if isinstance(a, ReleaseAction)]
    for action in [a for a in planned.actions if not isinstance(a, ReleaseAction)] + releases:
        why = run.waits(action)
        if why is not None:
            log.info("order %s: %s waits: %s", provider_order_id, action.key, why, extra=context)
            result.waiting.append((action, why))
            run.held_back(action, why, "waited")
            continue
        earlier = run.refused.get(outcome_key(action))
        if earlier is not None:
            result.failed.append(Failed(action, earlier.message or "refused", earlier.correlation_id))
            run.held_back(action, earlier.message or "refused", "permanent")
            continue
        await record(outcome_of(action, "started"))
        crash_point("action-started")
        try:
            provider_id = await _execute(provider, provider_order_id, action)
        except Exception as exc:
            crash_point("provider-answered")
            permanent = classify(exc)
            reason = str(permanent or exc) or type(exc).__name__
            if permanent is not None:
                correlation_id = permanent.correlation_id
                await record(outcome_of(action, "failed", message=reason, correlation_id=correlation_id))
                result.failed.append(Failed(action, reason, correlation_id))
            else:
                result.transient.append(Failed(action, reason))
            log.warning(
                "order %s: %s failed (%s): %s",
                provider_order_id,
                action.key,
                "permanent" if permanent else "will retry",
                reason,
                extra=context,
            )
            run.held_back(action, reason, "transient" if permanent is None else "permanent")
            continue
        crash_point("provider-answered")
        await record(outcome_of(action, "done", provider_id))
        crash_point("outcome-recorded")
        log.info("order %s: %s done as %s", provider_order_id, action.key, provider_id, extra=context)
        result.done.append(Done(action, provider_id))
        run.went(action)
    result.captures_pending = run.capture_transient
    return result


class _Run:
    """What the actions carried out so far in one pass allow next."""

    def __init__(self, result: SyncResult, state: ProviderOrder, refused: Mapping[str, Outcome]) -> None:
        self.refused = refused
        self.planned_captures = {a.reference for a in result.actions if isinstance(a, CaptureAction)}
        self.made: set[str] = set()
        self.capture_transient = False  # a capture failed in a way a later pass may fix
        self.refunds_blocked: str | None = None
        self.stopped: dict[str, str] = {}  # platform refund -> why its other parts are not sent
        self.sent: set[str] = {
            r.reference or "" for r in state.refunds if (r.reference or "").startswith(REFUND_PREFIX)
        }

    def _started(self, request_id: str) -> bool:
        prefix = refund_reference_prefix(request_id)
        return any(reference.startswith(prefix) for reference in self.sent)

    def waits(self, action: Action) -> str | None:
        if isinstance(action, RefundAction):
            if action.request_id in self.stopped:
                return self.stopped[action.request_id]
            if self.refunds_blocked is not None:
                return self.refunds_blocked
            if action.capture in self.planned_captures and action.capture not in self.made:
                return f"it comes out of parcel {action.parcel}, which was not captured"
            return None
        if isinstance(action, ReleaseAction) and self.capture_transient:
            return "a parcel may still be captured"
        return None

    def held_back(self, action: Action, why: str, how: str) -> None:
        """``action`` did not happen: it ``waited``, failed ``transient``ly or ``permanent``ly."""
        if isinstance(action, CaptureAction):
            # Only a capture a later pass may still make keeps the authorization from release.
            self.capture_transient = self.capture_transient or how == "transient"
        elif isinstance(action, RefundAction) and action.request_id not in self.stopped:
            if how == "permanent":
                self.stopped[action.request_id] = f"another part of this refund failed ({why})"
            elif how == "transient" or self._started(action.request_id):
                # A transient failure may have reached the provider (a lost answer): the refund
                # may be partly sent, and the planner finishes a partly sent refund first.
                self.refunds_blocked = f"refund {action.request_id} may be partly sent and goes first"
            else:
                self.stopped[action.request_id] = f"a part of it cannot go yet ({why})"

    def went(self, action: Action) -> None:
        if isinstance(action, CaptureAction):
            self.made.add(action.reference)
        elif isinstance(action, RefundAction):
            self.sent.add(action.reference)


async def _execute(provider: PaymentProvider, provider_order_id: str, action: Action) -> str:
    """Carry out one action; the provider's id for what it made (or the key when it makes nothing)."""
    if isinstance(action, CaptureAction):
        return await provider.capture(provider_order_id, action)
    if isinstance(action, RefundAction):
        return await provider.refund(provider_order_id, action)
    if isinstance(action, ShippingInfoAction):
        await provider.add_shipping_info(
            provider_order_id, action.capture, action.tracking, action.idempotency_key
        )
        return action.capture
    if action.cancel:
        await provider.cancel(provider_order_id, action.idempotency_key)
    else:
        await provider.release_remaining_authorization(provider_order_id, action.idempotency_key)
    return action.key
