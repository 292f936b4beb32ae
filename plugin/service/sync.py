"""Sync one order: read the provider, plan, carry the plan out in order.

Always reads the provider first (Klarna keeps idempotency keys for 24 h only, and a
capture made before a crash must be seen, not repeated). Stops at the first failure: the
next pass re-reads and re-plans, so nothing is done twice and nothing is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from plugin.domain.actions import Action, CaptureAction, RefundAction, Refusal, ReleaseAction
from plugin.domain.plan import plan
from plugin.domain.policy import Policy
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import Order
from plugin.service.ports import PaymentProvider

log = logging.getLogger("kom.sync")


@dataclass(frozen=True)
class Done:
    action: Action
    provider_id: str


@dataclass
class SyncResult:
    done: list[Done] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    state: ProviderOrder | None = None
    """The provider order as read before acting (still current when nothing was done)."""

    @property
    def in_sync(self) -> bool:
        return not self.refusals


async def sync_order(
    order: Order, provider_order_id: str, provider: PaymentProvider, policy: Policy | None = None
) -> SyncResult:
    """Bring the provider order in line with the platform order. Provider errors propagate."""
    state = await provider.get_order(provider_order_id)
    result = plan(order, state, policy)
    outcome = SyncResult(refusals=list(result.refusals), state=state)
    context = {"order": order.id, "provider_order": provider_order_id}
    for refusal in result.refusals:
        log.warning(
            "refused %s %s on order %s: %s",
            refusal.subject,
            refusal.subject_id,
            order.id,
            refusal.message,
            extra=context,
        )
    for action in result.actions:
        if isinstance(action, CaptureAction):
            provider_id = await provider.capture(provider_order_id, action)
        elif isinstance(action, RefundAction):
            provider_id = await provider.refund(provider_order_id, action)
        elif isinstance(action, ReleaseAction):
            if action.cancel:
                await provider.cancel(provider_order_id, action.idempotency_key)
            else:
                await provider.release_remaining_authorization(provider_order_id, action.idempotency_key)
            provider_id = action.key
        else:
            await provider.add_shipping_info(
                provider_order_id, action.capture, action.tracking, action.idempotency_key
            )
            provider_id = action.capture
        log.info("order %s: %s done as %s", order.id, action.key, provider_id, extra=context)
        outcome.done.append(Done(action, provider_id))
    return outcome
