"""KOM as the platform's payment app: open a Klarna Payments session for a checkout, turn
the shopper's authorization into a provider order (or adopt one placed elsewhere), and link
it to the platform's transaction, once per idempotency key.

From the moment a transaction is ``authorized`` here, its ``psp_reference`` is the provider
order id and the Order Management flow (worker, captures per parcel) takes over unchanged.

Every answer is stored under the platform's idempotency key before it is given, and a
replay gets the stored answer without any provider call. An answer is stored only once it
is final: when the provider's outcome is unknown (timeout), the record stays ``started`` and
a replay asks the provider again with the same provider idempotency key, which places the
order at most once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from plugin.domain.money import format_money
from plugin.service.ports import PaymentProvider
from plugin.service.records import (
    ChannelSettings,
    Installation,
    PaymentSessionRecord,
    PaymentTransaction,
    ProviderOrderLinked,
)

__all__ = [
    "CheckoutLine",
    "CheckoutPayments",
    "CheckoutSnapshot",
    "GatewayAnswer",
    "PaymentRefused",
    "PaymentSession",
    "PaymentSessions",
    "PlacedOrder",
    "SessionOptions",
    "SessionOutcome",
    "SessionRequest",
]

log = logging.getLogger("kom.payments")

# Klarna-Idempotency-Key of "place order" = uuid5(this, platform idempotency key).
_PLACE_ORDER_NAMESPACE = uuid.UUID("6f1b8f7e-5a4c-4e0a-9d7e-4b1b2f3c9a10")
_AUTHORIZED = "AUTHORIZED"


@dataclass(frozen=True)
class CheckoutLine:
    line_id: str
    reference: str
    name: str
    quantity: int
    unit_price: int  # gross, minor units
    total_amount: int  # gross after discounts
    total_tax_amount: int


@dataclass(frozen=True)
class CheckoutSnapshot:
    """A platform checkout as a payment session needs it; amounts in minor units, gross."""

    id: str
    channel: str
    currency: str
    country: str | None
    locale: str | None
    email: str | None
    lines: tuple[CheckoutLine, ...]
    shipping_amount: int
    shipping_tax_amount: int
    total_amount: int
    total_tax_amount: int


@dataclass(frozen=True)
class SessionOptions:
    """The merchant's per-channel rules applied to one session."""

    locale: str | None
    purchase_country: str | None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaymentSession:
    session_id: str
    client_token: str
    categories: tuple[dict[str, Any], ...]  # {"identifier", "name", ...} as the provider gives them


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    fraud_status: str = "ACCEPTED"


class PaymentRefused(Exception):
    """The provider refused (declined or expired authorization, invalid session): final."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CheckoutPayments(Protocol):
    """A provider's checkout payments of one merchant account (Klarna Payments)."""

    async def create_session(self, checkout: CheckoutSnapshot, options: SessionOptions) -> PaymentSession: ...

    async def update_session(
        self, session_id: str, checkout: CheckoutSnapshot, options: SessionOptions
    ) -> PaymentSession: ...

    async def place_order(
        self,
        authorization_token: str,
        checkout: CheckoutSnapshot,
        options: SessionOptions,
        idempotency_key: uuid.UUID,
    ) -> PlacedOrder: ...


@dataclass(frozen=True)
class SessionRequest:
    """One TRANSACTION_{INITIALIZE,PROCESS}_SESSION, platform-neutral."""

    checkout: CheckoutSnapshot
    transaction_id: str
    idempotency_key: str | None  # None for a process session
    amount: int
    currency: str
    authorization_token: str | None = None
    provider_order_id: str | None = None


@dataclass(frozen=True)
class SessionOutcome:
    """The answer: ``authorized`` (``psp_reference`` = provider order), ``failed`` or
    ``action_required`` (the storefront must let the shopper authorize; ``data`` says how)."""

    kind: str
    message: str
    psp_reference: str | None = None
    amount: int | None = None
    currency: str | None = None
    external_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SessionOutcome:
        return cls(**body)


@dataclass(frozen=True)
class GatewayAnswer:
    """What the storefront gets from the gateway initialize: client data, or why not."""

    data: dict[str, Any]


class SessionStore(Protocol):
    async def settings_for(self, installation_id: int, channel: str | None) -> ChannelSettings | None: ...
    async def payment_session(
        self, installation_id: int, checkout_id: str
    ) -> PaymentSessionRecord | None: ...
    async def save_payment_session(self, installation_id: int, record: PaymentSessionRecord) -> None: ...
    async def payment_transaction(
        self, installation_id: int, idempotency_key: str
    ) -> PaymentTransaction | None: ...
    async def payment_transaction_for(
        self, installation_id: int, transaction_id: str
    ) -> PaymentTransaction | None: ...
    async def start_payment_transaction(
        self, installation_id: int, record: PaymentTransaction
    ) -> PaymentTransaction: ...
    async def finish_payment_transaction(
        self,
        installation_id: int,
        idempotency_key: str,
        *,
        state: str,
        answer: dict[str, Any],
        provider_order_id: str | None = None,
    ) -> None: ...
    async def provider_order_link(self, installation_id: int, provider_order_id: str) -> str | None: ...


def _failed(message: str) -> SessionOutcome:
    return SessionOutcome("failed", message)


class _Refusal(Exception):
    def __init__(self, outcome: SessionOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class PaymentSessions:
    """The use cases behind the three payment-app session webhooks."""

    def __init__(
        self,
        store: SessionStore,
        payments: Callable[[ChannelSettings], CheckoutPayments],
        provider: Callable[[ChannelSettings], PaymentProvider],
    ) -> None:
        self.store = store
        self.payments = payments
        self.provider = provider

    # -- PAYMENT_GATEWAY_INITIALIZE_SESSION -----------------------------------------

    async def gateway_initialize(
        self, installation: Installation, checkout: CheckoutSnapshot
    ) -> GatewayAnswer:
        try:
            settings, options = await self._settings(installation, checkout)
        except _Refusal as refusal:
            return GatewayAnswer({"provider": "klarna", "errors": [{"message": refusal.outcome.message}]})
        session = await self._session(installation, settings, options, checkout)
        return GatewayAnswer(_client_data(settings, session))

    # -- TRANSACTION_INITIALIZE_SESSION ---------------------------------------------

    async def initialize(self, installation: Installation, request: SessionRequest) -> SessionOutcome:
        assert request.idempotency_key is not None
        record = PaymentTransaction(
            idempotency_key=request.idempotency_key,
            transaction_id=request.transaction_id,
            checkout_id=request.checkout.id,
            amount=request.amount,
            currency=request.currency,
        )
        found = await self.store.start_payment_transaction(installation.id, record)
        if (found.transaction_id, found.checkout_id, found.amount, found.currency) != (
            record.transaction_id,
            record.checkout_id,
            record.amount,
            record.currency,
        ):
            return _failed(
                "This idempotency key was used for another payment (other transaction, checkout or "
                "amount); KOM did nothing for this one."
            )
        if found.answer is not None and found.state != "action_required":
            log.info("initialize %s replayed: the first answer stands", request.idempotency_key)
            return SessionOutcome.from_json(found.answer)
        return await self._run(installation, request, found)

    # -- TRANSACTION_PROCESS_SESSION ------------------------------------------------

    async def process(self, installation: Installation, request: SessionRequest) -> SessionOutcome:
        found = await self.store.payment_transaction_for(installation.id, request.transaction_id)
        if found is None:
            return _failed(
                "KOM has no payment started for this transaction; call transactionInitialize first."
            )
        if found.answer is not None and found.state != "action_required":
            return SessionOutcome.from_json(found.answer)
        return await self._run(installation, request, found)

    # -- the shared steps -----------------------------------------------------------

    async def _run(
        self, installation: Installation, request: SessionRequest, record: PaymentTransaction
    ) -> SessionOutcome:
        try:
            settings, options = await self._settings(installation, request.checkout)
            self._check_amount(request)
            if request.provider_order_id is not None:
                outcome = await self._adopt(installation, settings, request)
            elif request.authorization_token is not None:
                outcome = await self._place(installation, settings, options, request, record)
            else:
                session = await self._session(installation, settings, options, request.checkout)
                outcome = SessionOutcome(
                    "action_required",
                    "The shopper authorizes with Klarna next; then call transactionProcess with "
                    "data.authorizationToken.",
                    data=_client_data(settings, session),
                )
        except _Refusal as refusal:
            outcome = refusal.outcome
        state = {"authorized": "authorized", "failed": "failed", "action_required": "action_required"}[
            outcome.kind
        ]
        try:
            await self.store.finish_payment_transaction(
                installation.id,
                record.idempotency_key,
                state=state,
                answer=outcome.to_json(),
                provider_order_id=outcome.psp_reference if outcome.kind == "authorized" else None,
            )
        except ProviderOrderLinked:
            outcome = _failed(
                f"Klarna order {outcome.psp_reference} is linked to another Saleor payment already; "
                "KOM takes it over only once."
            )
            await self.store.finish_payment_transaction(
                installation.id, record.idempotency_key, state="failed", answer=outcome.to_json()
            )
        return outcome

    async def _settings(
        self, installation: Installation, checkout: CheckoutSnapshot
    ) -> tuple[ChannelSettings, SessionOptions]:
        settings = await self.store.settings_for(installation.id, checkout.channel)
        if settings is None:
            raise _Refusal(_failed(f"KOM is not set up for channel {checkout.channel!r}."))
        if not settings.payments_enabled:
            raise _Refusal(_failed(f"Klarna Payments is turned off for channel {checkout.channel!r} in KOM."))
        country = checkout.country
        if settings.purchase_countries and country not in settings.purchase_countries:
            allowed = ", ".join(settings.purchase_countries)
            raise _Refusal(
                _failed(
                    f"Klarna is offered in this channel to shoppers from {allowed}, "
                    f"not {country or 'unknown'}."
                )
            )
        options = SessionOptions(
            locale=settings.payment_locale or checkout.locale,
            purchase_country=country,
            categories=settings.payment_categories,
        )
        return settings, options

    @staticmethod
    def _check_amount(request: SessionRequest) -> None:
        checkout = request.checkout
        if request.currency != checkout.currency:
            raise _Refusal(
                _failed(
                    f"The payment is in {request.currency}, the checkout in {checkout.currency}; refused."
                )
            )
        if request.amount != checkout.total_amount:
            raise _Refusal(
                _failed(
                    "KOM pays the whole checkout with Klarna: "
                    f"{format_money(checkout.total_amount, checkout.currency)} is due, "
                    f"{format_money(request.amount, request.currency)} was asked for; refused."
                )
            )

    async def _session(
        self,
        installation: Installation,
        settings: ChannelSettings,
        options: SessionOptions,
        checkout: CheckoutSnapshot,
    ) -> PaymentSession:
        payments = self.payments(settings)
        known = await self.store.payment_session(installation.id, checkout.id)
        session: PaymentSession | None = None
        if known is not None:
            try:
                session = await payments.update_session(known.session_id, checkout, options)
            except PaymentRefused:
                session = None  # expired (48 h) or already used: open a new one
        if session is None:
            try:
                session = await payments.create_session(checkout, options)
            except PaymentRefused as exc:
                raise _Refusal(
                    _failed(f"Klarna refused a payment session for this checkout: {exc.reason}")
                ) from exc
        await self.store.save_payment_session(
            installation.id,
            PaymentSessionRecord(checkout.id, session.session_id, session.client_token, session.categories),
        )
        return session

    async def _place(
        self,
        installation: Installation,
        settings: ChannelSettings,
        options: SessionOptions,
        request: SessionRequest,
        record: PaymentTransaction,
    ) -> SessionOutcome:
        assert request.authorization_token is not None
        key = uuid.uuid5(_PLACE_ORDER_NAMESPACE, f"{installation.id}:{record.idempotency_key}")
        try:
            placed = await self.payments(settings).place_order(
                request.authorization_token, request.checkout, options, key
            )
        except PaymentRefused as exc:
            raise _Refusal(_failed(f"Klarna declined the authorization: {exc.reason}")) from exc
        if placed.fraud_status.upper() == "REJECTED":
            await self._cancel(settings, placed.order_id)
            raise _Refusal(
                _failed(f"Klarna rejected order {placed.order_id} (fraud check); it was cancelled.")
            )
        return await self._verified(installation, settings, request, placed.order_id, placed_here=True)

    async def _adopt(
        self, installation: Installation, settings: ChannelSettings, request: SessionRequest
    ) -> SessionOutcome:
        assert request.provider_order_id is not None
        link = await self.store.provider_order_link(installation.id, request.provider_order_id)
        if link is not None:
            raise _Refusal(
                _failed(f"Order {request.provider_order_id} is linked to {link} in KOM already; refused.")
            )
        return await self._verified(
            installation, settings, request, request.provider_order_id, placed_here=False
        )

    async def _verified(
        self,
        installation: Installation,
        settings: ChannelSettings,
        request: SessionRequest,
        order_id: str,
        *,
        placed_here: bool,
    ) -> SessionOutcome:
        """GET order and check it is an authorization of exactly this checkout, untouched."""
        provider = self.provider(settings)
        try:
            order = await provider.get_order(order_id)
        except Exception as exc:  # not found, not ours, unreachable: the shopper's payment cannot be shown
            if not placed_here:
                raise _Refusal(
                    _failed(f"KOM cannot read order {order_id} in your Klarna account: {exc}")
                ) from exc
            raise
        problems = []
        if order.status != _AUTHORIZED:
            problems.append(f"its status is {order.status}, not AUTHORIZED")
        if order.captured_amount or order.refunded_amount:
            problems.append(
                f"it is captured already ({format_money(order.captured_amount, order.currency)})"
                if order.captured_amount
                else "it has refunds already"
            )
        if order.currency != request.currency:
            problems.append(f"it is in {order.currency}, the checkout in {request.currency}")
        elif order.order_amount != request.amount:
            problems.append(
                f"it is for {format_money(order.order_amount, order.currency)}, the checkout for "
                f"{format_money(request.amount, request.currency)}"
            )
        if problems:
            if placed_here:
                await self._cancel(settings, order_id)
            verb = "was cancelled" if placed_here else "was not taken over"
            raise _Refusal(_failed(f"Klarna order {order_id} {verb}: {'; '.join(problems)}."))
        what = "authorized" if placed_here else "taken over"
        return SessionOutcome(
            "authorized",
            f"Klarna order {order_id} {what}: {format_money(order.order_amount, order.currency)}; "
            "each parcel is captured when it ships.",
            psp_reference=order_id,
            amount=order.order_amount,
            currency=order.currency,
            external_url=provider.portal_url(order_id),
        )

    async def _cancel(self, settings: ChannelSettings, order_id: str) -> None:
        key = uuid.uuid5(_PLACE_ORDER_NAMESPACE, f"cancel:{order_id}")
        try:
            await self.provider(settings).cancel(order_id, key)
        except Exception:  # the refusal stands; the merchant sees the order in the portal
            log.exception("could not cancel Klarna order %s after refusing it", order_id)


def _client_data(settings: ChannelSettings, session: PaymentSession) -> dict[str, Any]:
    categories = [
        category
        for category in session.categories
        if not settings.payment_categories or category.get("identifier") in settings.payment_categories
    ]
    return {
        "provider": settings.provider,
        "sessionId": session.session_id,
        "clientToken": session.client_token,
        "paymentMethodCategories": categories,
    }
