"""Saleor's checkout and transaction-session flow, as ``saleor/payment/utils.py`` runs it.

- ``paymentGatewayInitialize``: PAYMENT_GATEWAY_INITIALIZE_SESSION to the app; only a 2xx
  JSON answer with a ``data`` key counts (``PaymentGatewayInitializeSessionSchema``), else the
  gateway config carries an error.
- ``transactionInitialize``: ``get_or_create`` of the transaction by (idempotencyKey,
  checkout) and of its request event by (key, type, amount): the same key and amount send the
  webhook again for the same transaction; the same key with another amount is the error
  "Different transaction with provided idempotency key already exists." and nothing is sent.
- the answer is parsed by ``result`` (``_validate_transaction_session_action_data``):
  AUTHORIZATION/CHARGE _SUCCESS/_REQUEST need ``pspReference``; _FAILURE, _ACTION_REQUIRED
  don't; anything else, a non-2xx or non-JSON answer is a failure event ("Failed to delivery
  request." when nothing parsable came back). Events are deduplicated by (pspReference, type);
  a second AUTHORIZATION_SUCCESS with another pspReference becomes AUTHORIZATION_FAILURE.
- ``transactionProcess`` is one-shot: once a final event exists it returns it without calling
  the app; without an initialize it is INVALID "Missing call of `transactionInitialize` mutation.".
- ``checkoutComplete`` needs the checkout authorized or charged in full (else
  CHECKOUT_NOT_FULLY_PAID) and turns it into an order carrying the app's transaction.

Payloads come from the app's own subscription documents executed against the real schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from graphql import ExecutionResult, execute

from .ids import to_global_id
from .money import net_from_gross, to_decimal, to_minor
from .orders import LineSpec
from .state import App, SaleorError, Webhook

if TYPE_CHECKING:
    from .driver import FakeSaleor

__all__ = ["Checkout", "CheckoutFlow", "SessionEvent", "SessionTransaction"]

_NEEDS_PSP = {"AUTHORIZATION_SUCCESS", "CHARGE_SUCCESS", "AUTHORIZATION_REQUEST", "CHARGE_REQUEST"}
_OPTIONAL_PSP = {
    "AUTHORIZATION_FAILURE",
    "CHARGE_FAILURE",
    "AUTHORIZATION_ACTION_REQUIRED",
    "CHARGE_ACTION_REQUIRED",
}
_FINAL = {"AUTHORIZATION_SUCCESS", "CHARGE_SUCCESS", "AUTHORIZATION_FAILURE", "CHARGE_FAILURE"}


@dataclass
class SessionEvent:
    type: str
    psp_reference: str
    amount: int
    message: str = ""


@dataclass
class SessionTransaction:
    token: str
    checkout_pk: str
    idempotency_key: str
    amount: int
    app_pk: int
    psp_reference: str = ""
    events: list[SessionEvent] = field(default_factory=list)
    order_transaction: str | None = None

    @property
    def authorized(self) -> int:
        return sum(e.amount for e in self.events if e.type == "AUTHORIZATION_SUCCESS")

    @property
    def final(self) -> SessionEvent | None:
        return next((e for e in reversed(self.events) if e.type in _FINAL), None)


@dataclass
class Checkout:
    pk: str
    channel: str
    currency: str
    country: str
    language: str
    lines: list[LineSpec]
    shipping: tuple[object, object] | None
    transactions: list[str] = field(default_factory=list)
    order_id: str | None = None

    def money(self) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], int]:
        """Lines, shipping and total as Saleor's TaxedMoney (gross entered, flat rates)."""
        lines, total, total_net = [], 0, 0
        for i, spec in enumerate(self.lines):
            rate = to_decimal(spec.tax_rate)
            unit = to_minor(spec.unit_gross, self.currency)
            gross = unit * spec.quantity
            net = net_from_gross(gross, rate)
            unit_net = net_from_gross(unit, rate)
            total, total_net = total + gross, total_net + net
            lines.append(
                {
                    "__typename": "CheckoutLine",
                    "id": to_global_id("CheckoutLine", f"{self.pk}-{i}"),
                    "quantity": spec.quantity,
                    "variant": {
                        "__typename": "ProductVariant",
                        "id": to_global_id("ProductVariant", 100 + i),
                        "sku": spec.sku,
                        "name": spec.variant_name,
                        "product": {"__typename": "Product", "name": spec.name},
                    },
                    "unitPrice": self._taxed(unit, unit_net),
                    "totalPrice": self._taxed(gross, net),
                }
            )
        ship_gross = to_minor(self.shipping[0], self.currency) if self.shipping else 0
        ship_net = net_from_gross(ship_gross, to_decimal(self.shipping[1])) if self.shipping else 0
        return (
            lines,
            self._taxed(ship_gross, ship_net),
            self._taxed(total + ship_gross, total_net + ship_net),
            total + ship_gross,
        )

    def _taxed(self, gross: int, net: int) -> dict[str, Any]:
        def money(value: int) -> dict[str, Any]:
            amount = Decimal(value).scaleb(-2)
            return {"__typename": "Money", "amount": float(amount), "currency": self.currency}

        return {
            "__typename": "TaxedMoney",
            "currency": self.currency,
            "gross": money(gross),
            "net": money(net),
            "tax": money(gross - net),
        }


class CheckoutFlow:
    """The storefront's mutations, played against one fake Saleor."""

    def __init__(self, saleor: FakeSaleor) -> None:
        self.saleor = saleor
        self.checkouts: dict[str, Checkout] = {}
        self.transactions: dict[str, SessionTransaction] = {}
        self.sent: list[tuple[str, dict[str, Any], int | None, bytes]] = []

    def create(
        self,
        lines: list[tuple[str, str, int, str, str]],
        *,
        shipping: tuple[object, object] | None = None,
        currency: str = "EUR",
        channel: str = "default-channel",
        country: str = "SE",
        language: str = "SV_SE",
    ) -> str:
        """checkoutCreate + checkoutShippingAddressUpdate + checkoutDeliveryMethodUpdate."""
        specs = [LineSpec(sku, name, qty, gross, rate) for sku, name, qty, gross, rate in lines]
        pk = self.saleor._new_uuid()
        self.checkouts[pk] = Checkout(pk, channel, currency, country, language, specs, shipping)
        return to_global_id("Checkout", pk)

    def _checkout(self, checkout_id: str) -> Checkout:
        from .ids import from_global_id

        return self.checkouts[from_global_id(checkout_id, "Checkout")]

    def _source(self, checkout: Checkout) -> dict[str, Any]:
        lines, shipping, total, _ = checkout.money()
        country = {"__typename": "CountryDisplay", "code": checkout.country, "country": checkout.country}
        address = {"__typename": "Address", "country": country}
        return {
            "__typename": "Checkout",
            "id": to_global_id("Checkout", checkout.pk),
            "email": "shopper@example.com",
            "languageCode": checkout.language,
            "channel": {
                "__typename": "Channel",
                "slug": checkout.channel,
                "currencyCode": checkout.currency,
                "defaultCountry": country,
            },
            "billingAddress": address,
            "shippingAddress": address,
            "lines": lines,
            "shippingPrice": shipping,
            "totalPrice": total,
        }

    def _webhook(self, app: App, event_type: str) -> Webhook | None:
        if not app.is_active or app.deleted or "HANDLE_PAYMENTS" not in app.permissions:
            return None
        return next((w for w in app.webhooks if w.is_active and event_type in w.sync_events), None)

    async def _send(self, app: App, event_type: str, root: dict[str, Any]) -> Any:
        """One inline attempt (no retry); the parsed JSON of a 2xx answer, else None."""
        webhook = self._webhook(app, event_type)
        if webhook is None:
            return None
        base = {
            "__typename": "".join(w.capitalize() for w in event_type.split("_")),
            "issuedAt": self.saleor.store.now().isoformat(),
            "version": "3.23.28",
            "recipient": {"__typename": "App", "id": to_global_id("App", app.pk)},
        }
        result = execute(self.saleor.schema, webhook.document, root_value={"event": {**base, **root}})
        assert isinstance(result, ExecutionResult)
        assert not result.errors, result.errors
        body = json.dumps((result.data or {})["event"]).encode()
        signature = self.saleor.key.sign_detached(body)
        headers = {
            "Content-Type": "application/json",
            "Saleor-Event": event_type.lower(),
            "Saleor-Signature": signature,
            "Saleor-Api-Url": self.saleor.api_url,
            "Saleor-Domain": httpx.URL(self.saleor.api_url).netloc.decode(),
        }
        async with httpx.AsyncClient(timeout=httpx.Timeout(18.0, connect=2.0)) as client:
            try:
                response = await client.post(webhook.target_url, content=body, headers=headers)
            except httpx.HTTPError:
                self.sent.append((event_type, json.loads(body), None, b""))
                return None
        self.sent.append((event_type, json.loads(body), response.status_code, response.content))
        if not 200 <= response.status_code < 300:
            return None
        try:
            return json.loads(response.content)
        except ValueError:
            return None

    # -- paymentGatewayInitialize ----------------------------------------------------

    async def payment_gateway_initialize(
        self, checkout_id: str, app: App, data: Any = None
    ) -> dict[str, Any]:
        checkout = self._checkout(checkout_id)
        if self._webhook(app, "PAYMENT_GATEWAY_INITIALIZE_SESSION") is None:
            raise SaleorError(
                "NOT_FOUND",
                "Active app with `HANDLE_PAYMENT` permissions or app webhook not found.",
                "paymentGateways",
            )
        _, _, _, total = checkout.money()
        left = total - sum(self.transactions[t].authorized for t in checkout.transactions)
        root = {
            "sourceObject": self._source(checkout),
            "data": data,
            "amount": float(Decimal(left).scaleb(-2)),
        }
        answer = await self._send(app, "PAYMENT_GATEWAY_INITIALIZE_SESSION", root)
        if not isinstance(answer, dict) or "data" not in answer:
            return {
                "id": app.identifier,
                "data": None,
                "errors": ["Unable to process a payment gateway response."],
            }
        return {"id": app.identifier, "data": answer["data"], "errors": []}

    # -- transactionInitialize / transactionProcess ---------------------------------

    async def transaction_initialize(
        self, checkout_id: str, app: App, data: Any, idempotency_key: str, amount: object | None = None
    ) -> tuple[str, SessionEvent, Any]:
        """(transaction id, the event it produced, the data the app returned)."""
        checkout = self._checkout(checkout_id)
        _, _, _, total = checkout.money()
        left = total - sum(self.transactions[t].authorized for t in checkout.transactions)
        wanted = left if amount is None else to_minor(amount, checkout.currency)
        found = next(
            (
                t
                for t in self.transactions.values()
                if t.idempotency_key == idempotency_key and t.checkout_pk == checkout.pk
            ),
            None,
        )
        if found is not None and found.amount != wanted:
            raise SaleorError(
                "UNIQUE",
                "Different transaction with provided idempotency key already exists.",
                "idempotencyKey",
            )
        if found is None:
            found = SessionTransaction(self.saleor._new_uuid(), checkout.pk, idempotency_key, wanted, app.pk)
            self.transactions[found.token] = found
            checkout.transactions.append(found.token)
        root = self._session_root(checkout, found, data) | {"idempotencyKey": idempotency_key}
        answer = await self._send(app, "TRANSACTION_INITIALIZE_SESSION", root)
        event = self._apply(found, answer)
        return (
            to_global_id("TransactionItem", found.token),
            event,
            (answer or {}).get("data") if isinstance(answer, dict) else None,
        )

    async def transaction_process(self, transaction_id: str, app: App, data: Any) -> tuple[SessionEvent, Any]:
        from .ids import from_global_id

        found = self.transactions.get(from_global_id(transaction_id, "TransactionItem"))
        if found is None or not found.events:
            raise SaleorError("INVALID", "Missing call of `transactionInitialize` mutation.", "id")
        if found.final is not None:
            return found.final, None  # one-shot: no webhook once a final event exists
        checkout = self.checkouts[found.checkout_pk]
        answer = await self._send(
            app, "TRANSACTION_PROCESS_SESSION", self._session_root(checkout, found, data)
        )
        event = self._apply(found, answer)
        return event, (answer or {}).get("data") if isinstance(answer, dict) else None

    def _session_root(self, checkout: Checkout, found: SessionTransaction, data: Any) -> dict[str, Any]:
        return {
            "sourceObject": self._source(checkout),
            "data": data,
            "merchantReference": to_global_id("TransactionItem", found.token),
            "customerIpAddress": "127.0.0.1",
            "action": {
                "__typename": "TransactionProcessAction",
                "amount": float(Decimal(found.amount).scaleb(-2)),
                "currency": checkout.currency,
                "actionType": "CHARGE",  # the channel default; a storefront cannot ask otherwise
            },
            "transaction": {
                "__typename": "TransactionItem",
                "id": to_global_id("TransactionItem", found.token),
                "token": found.token,
                "pspReference": found.psp_reference,
                "createdBy": {
                    "__typename": "App",
                    "id": to_global_id("App", found.app_pk),
                    "identifier": None,
                },
            },
        }

    def _apply(self, found: SessionTransaction, answer: Any) -> SessionEvent:
        failure = SessionEvent("AUTHORIZATION_FAILURE", "", found.amount)
        if not isinstance(answer, dict):
            failure.message = "Failed to delivery request."
            found.events.append(failure)
            return failure
        result = answer.get("result")
        psp = answer.get("pspReference") or ""
        if result not in _NEEDS_PSP | _OPTIONAL_PSP or (result in _NEEDS_PSP and not psp):
            failure.message = (
                f"Missing or invalid value for `result`: {result}."
                if result not in _NEEDS_PSP
                else ("pspReference: Field required")
            )
            found.events.append(failure)
            return failure
        currency = self.checkouts[found.checkout_pk].currency
        # Saleor: ``amount or request_event_amount`` — a missing or 0 amount is the requested one.
        amount = to_minor(Decimal(str(answer["amount"])), currency) if answer.get("amount") else found.amount
        event = SessionEvent(result, psp, amount, str(answer.get("message") or "")[:512])
        existing = next(
            (e for e in found.events if e.type == result and e.psp_reference == psp and psp), None
        )
        if existing is not None and result not in ("AUTHORIZATION_ACTION_REQUIRED", "CHARGE_ACTION_REQUIRED"):
            return existing
        if result == "AUTHORIZATION_SUCCESS" and found.authorized:
            failure.message = "Event with `AUTHORIZATION_SUCCESS` already reported for the transaction."
            found.events.append(failure)
            return failure
        found.events.append(event)
        if result in _NEEDS_PSP:
            found.psp_reference = psp
        return event

    # -- checkoutComplete ------------------------------------------------------------

    def checkout_complete(self, checkout_id: str) -> tuple[str, str]:
        """The order and its transaction (now on the order, still owned by the app)."""
        checkout = self._checkout(checkout_id)
        _, _, _, total = checkout.money()
        paid = [self.transactions[t] for t in checkout.transactions if self.transactions[t].authorized]
        if sum(t.authorized for t in paid) < total:
            raise SaleorError(
                "CHECKOUT_NOT_FULLY_PAID",
                "The authorized amount doesn't cover the checkout's total amount.",
                "id",
            )
        lines = [(s.sku, s.name, s.quantity, s.unit_gross, s.tax_rate) for s in checkout.lines]
        order = self.saleor.create_order(
            channel=checkout.channel, currency=checkout.currency, lines=lines, shipping=checkout.shipping
        )
        (session,) = paid
        app = self.saleor.store.apps[session.app_pk]
        transaction_id = self.saleor.create_transaction(
            order.id,
            to_global_id("App", app.pk),
            session.psp_reference,
            Decimal(session.authorized).scaleb(-2),
            available_actions=("REFUND", "CANCEL"),
        )
        session.order_transaction = transaction_id
        checkout.order_id = order.id
        return order.id, transaction_id
