"""The authorization clock: provider authorizations expire (Klarna's ``expires_at``, 28 days by
default), and what is not captured by then can never be.

``read_clock`` (pure) says, for one order now: nothing to do, warn the merchant (goods still
unshipped and the expiry inside the warning window, or already past), or extend the
authorization (the channel enabled it). ``keep_authorization`` carries that out after a sync:
extends through the provider port, records the expiry for the dashboard and the sweep,
warns once per expiry (log, metric, a needs-attention finding). ``enqueue_expiring`` makes
orders due whose expiry enters the window while nothing else touches them.

Klarna's rules (klarna-api.md §3.6): an extension sets the expiry to today + the account's
period, never beyond 180 days after the order was created, and never after it expired.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from plugin.domain.actions import idempotency_key
from plugin.domain.money import format_money
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import Order
from plugin.service.adoption import unshipped_units
from plugin.service.ports import AuthorizationStore, PaymentProvider
from plugin.service.records import AuthorizationRecord, FindingRecord

log = logging.getLogger("kom.authorization")

SOURCE = "authorization"
EXPIRING = "authorization_expiring"
EXPIRED = "authorization_expired"
_CLOSED = frozenset({"CANCELLED", "CAPTURED", "CLOSED"})


class Decision(StrEnum):
    NOTHING = "nothing"
    WARN = "warn"
    EXTEND = "extend"


@dataclass(frozen=True)
class ClockReading:
    decision: Decision
    state: str
    """settled (nothing left to capture) | ok | warning (inside the window) | expired"""
    expires_at: datetime | None
    unshipped_units: int
    remaining: int
    currency: str
    message: str
    idempotency_key: uuid.UUID | None = None
    """For EXTEND: one key per expiry, so a retried extension is one extension."""

    @property
    def finding_kind(self) -> str | None:
        if self.decision is not Decision.WARN:
            return None
        return EXPIRED if self.state == "expired" else EXPIRING


def read_clock(
    order: Order, provider: ProviderOrder, *, extend: bool, window: timedelta, now: datetime
) -> ClockReading:
    """What to do about one order's authorization at ``now`` (pure)."""
    remaining, currency = provider.remaining_authorized_amount, provider.currency
    expires = provider.expires_at
    unshipped = unshipped_units(order, provider) if remaining > 0 and not order.cancelled else 0

    def reading(decision: Decision, state: str, message: str) -> ClockReading:
        return ClockReading(decision, state, expires, unshipped, remaining, currency, message)

    if remaining <= 0 or provider.status in _CLOSED:
        return reading(Decision.NOTHING, "settled", "Nothing is left authorized to capture.")
    if order.cancelled:  # the planner releases the rest; nothing more will ship
        return reading(Decision.NOTHING, "settled", "The order is cancelled: nothing more ships.")
    if unshipped == 0:
        return reading(Decision.NOTHING, "settled", "Every item has shipped.")
    left = f"{_items(unshipped)} not shipped yet ({format_money(remaining, currency)} left to capture)"
    if expires is None:
        return reading(Decision.NOTHING, "ok", f"The provider gives no expiry; {left}.")
    if now >= expires or provider.status == "EXPIRED":
        return reading(
            Decision.WARN,
            "expired",
            f"The authorization expired on {_day(expires)} with {left}: those can no longer be captured.",
        )
    if expires - now > window:
        return reading(Decision.NOTHING, "ok", f"The authorization expires on {_day(expires)}; {left}.")
    message = f"The authorization expires on {_day(expires)} (in {_span(expires - now)}) with {left}."
    if extend:
        key = idempotency_key(provider.order_id, f"extend:{expires.isoformat()}")
        return replace(reading(Decision.EXTEND, "warning", message), idempotency_key=key)
    return reading(Decision.WARN, "warning", message)


def _no_metric(event: str) -> None:
    return None


async def keep_authorization(
    store: AuthorizationStore,
    provider: PaymentProvider,
    *,
    installation_id: int,
    order: Order,
    state: ProviderOrder,
    extend: bool,
    window: timedelta,
    now: datetime,
    observe: Callable[[str], None] = _no_metric,
) -> ClockReading:
    """Read the clock for one synced order and act on it; returns the final reading.

    ``state`` is the provider order as it stands after the sync. ``observe`` counts events
    (warned, expired, extended, extend_failed): plugin.observability.authorization_event.
    Provider errors while extending do not propagate: the merchant is warned instead and
    the next pass tries again (same idempotency key while the expiry is unchanged).
    """
    context = {"installation": installation_id, "order": order.id}
    previous = (await store.authorizations(installation_id, [order.id])).get(order.id)
    extended_at = previous.extended_at if previous else None
    extensions = previous.extensions if previous else 0
    reading = read_clock(order, state, extend=extend, window=window, now=now)
    if reading.decision is Decision.EXTEND:
        assert reading.idempotency_key is not None
        try:
            await provider.extend_authorization(state.order_id, reading.idempotency_key)
            fresh = await provider.get_order(state.order_id)
        except Exception as exc:
            observe("extend_failed")
            log.warning("order %s: the authorization could not be extended: %s", order.id, exc, extra=context)
            reading = replace(
                reading, decision=Decision.WARN, message=f"{reading.message} KOM could not extend it: {exc}"
            )
        else:
            observe("extended")
            extended_at, extensions = now, extensions + 1
            log.info(
                "order %s: authorization extended from %s to %s",
                order.id,
                _day(state.expires_at),
                _day(fresh.expires_at),
                extra=context,
            )
            # Once per pass: still inside the window (the 180-day limit) means warn, not extend again.
            reading = read_clock(order, fresh, extend=False, window=window, now=now)
            if reading.decision is Decision.WARN:
                reading = replace(reading, message=f"{reading.message} It cannot be extended any further.")
    warned_for = previous.warned_for if previous else None
    if reading.decision is Decision.WARN:
        first = previous is None or previous.state != reading.state or warned_for != reading.expires_at
        if first:  # one warning per expiry and state, however often the order is synced
            observe("expired" if reading.state == "expired" else "warned")
            log.warning("order %s: %s", order.id, reading.message, extra=context)
        warned_for = reading.expires_at
    await store.save_authorization(
        installation_id,
        AuthorizationRecord(
            platform_order_id=order.id,
            provider_order_id=state.order_id,
            state=reading.state,
            expires_at=reading.expires_at,
            unshipped_units=reading.unshipped_units,
            remaining_amount=reading.remaining,
            currency=reading.currency,
            message=reading.message,
            checked_at=now,
            warned_for=warned_for,
            extended_at=extended_at,
            extensions=extensions,
        ),
    )
    await store.replace_findings(installation_id, order.id, SOURCE, clock_findings(order, reading, extend))
    return reading


def clock_findings(order: Order, reading: ClockReading, extend: bool) -> list[FindingRecord]:
    """The needs-attention item for a reading that warns (none otherwise)."""
    kind = reading.finding_kind
    if kind is None:
        return []
    if kind == EXPIRED:
        action = (
            "The unshipped items can no longer be captured: ask the shopper to pay for them another "
            "way, or cancel them on the order."
        )
    elif extend:
        action = f"Ship the remaining items before {_day(reading.expires_at)}; automatic extension failed."
    else:
        action = (
            f"Ship the remaining items before {_day(reading.expires_at)}, or turn on automatic "
            "extension for this channel in KOM's settings."
        )
    return [
        FindingRecord(
            platform_order_id=order.id,
            kind=kind,
            detail=reading.message,
            suggested_action=action,
            source=SOURCE,
            order_number=order.number,
        )
    ]


async def enqueue_expiring(store: AuthorizationStore, *, now: datetime, window: timedelta) -> int:
    """Make due the orders whose authorization needs a look now (for the worker's sweep)."""
    due = await store.authorizations_due(warn_before=now + window, now=now)
    for installation_id, order_id in due:
        await store.touch_order(installation_id, order_id)
    if due:
        log.info("%d orders with an authorization about to expire enqueued", len(due))
    return len(due)


def _items(units: int) -> str:
    return f"{units} item{'s' if units != 1 else ''}"


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown date"


def _span(delta: timedelta) -> str:
    hours = max(int(delta.total_seconds() // 3600), 0)
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"
