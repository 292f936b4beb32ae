"""``FakeSaleor``: the stateful fake and the driver API end-to-end tests use.

Every driver method acts like the Dashboard mutation a merchant's staff user would run
(``issuingPrincipal`` = the staff user ``User:1``) and queues the webhooks Saleor 3.23.28
sends for it; nothing is sent until ``await fake.deliver_pending()``. Ids going in and out
are Saleor global ids (the strings KOM sees). Amounts going in are major units ("30.00",
Decimal, int or float); inside, money is integer minor units.

Errors a Saleor mutation would answer in its ``errors`` list raise ``SaleorError`` (with
``code``, ``field``, ``message``).
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette

from .checkouts import CheckoutFlow
from .graphql_api import GraphQLApi
from .ids import from_global_id, to_global_id
from .install import InstallationFailed, InstalledApp, Installer
from .money import exponent, to_minor
from .order_actions import STAFF, OrderActions
from .orders import LineSpec, parse_line_spec
from .presenters import Presenter
from .schema import require_schema
from .signing import SigningKey
from .state import STAFF_EMAIL, STAFF_USER_PK, App, Order, SaleorError, Store, Transaction
from .transactions import Payments
from .views import (
    CreatedFulfillment,
    CreatedOrder,
    TransactionView,
    created_fulfillment,
    created_order,
    grant_view,
    transaction_view,
)
from .webhooks import Attempt, Delivery, DeliveryOptions, WebhookHub

__all__ = ["ORDER_QUERY", "FakeSaleor", "InstallationFailed", "InstalledApp", "SaleorError"]

AppRef = str | InstalledApp


class FakeSaleor:
    """A stateful Saleor 3.23.28.

    Options: ``base_url`` (set by ``serve_fake_saleor``), ``seed`` (reproducible ids and
    shuffles), ``clock``, ``shuffle`` (deliver out of order, like Celery),
    ``duplicate_deliveries`` (every send twice), ``host_without_port`` (``Host`` header as
    Saleor's IP filter sends it), ``max_retries`` (5), ``sync_retry_empty_body`` (True: the
    3.23.28 bug), ``timeout`` (2 s connect / 18 s read), ``transport`` (httpx transport for
    the fake's outgoing requests).
    """

    def __init__(
        self,
        *,
        base_url: str = "http://saleor.test",
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        shuffle: bool = False,
        duplicate_deliveries: bool = False,
        host_without_port: bool = False,
        max_retries: int = 5,
        sync_retry_empty_body: bool = True,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.schema = require_schema()  # skips the test without the shared dir (fails in CI)
        self.store = Store(clock=clock) if clock else Store()
        self._uuids = random.Random(seed)
        self.key = SigningKey()
        self.options = DeliveryOptions(
            shuffle=shuffle,
            duplicate=duplicate_deliveries,
            host_without_port=host_without_port,
            max_retries=max_retries,
            sync_retry_empty_body=sync_retry_empty_body,
            timeout=timeout or httpx.Timeout(18.0, connect=2.0),
            transport=transport,
        )
        self.presenter = Presenter(self.store)
        self.hub = WebhookHub(
            self.store,
            self.schema,
            self.presenter,
            key=lambda: self.key,
            api_url=lambda: self.api_url,
            options=self.options,
            rng=random.Random(seed + 1),
        )
        self.payments = Payments(self.store, self.hub.emit, self.hub.send_request, self._new_uuid)
        self.hub.payments = self.payments
        self.orders = OrderActions(self.store, self.hub.emit, self._new_uuid)
        self.graphql = GraphQLApi(self.store, self.schema, self.presenter, self.payments)
        self.installer = Installer(self.store, self.schema, self.options)
        self._asgi: Starlette | None = None
        self.checkouts = CheckoutFlow(self)  # the storefront's checkout and payment sessions

    # -- wiring --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """``Saleor-Api-Url``: ``http://<host>/graphql/``."""
        return f"{self.base_url}/graphql/"

    @property
    def asgi(self) -> Starlette:
        """The fake's Starlette app (``/graphql/``, ``/.well-known/jwks.json``)."""
        if self._asgi is None:
            from .app import create_app

            self._asgi = create_app(self)
        return self._asgi

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self._uuids.getrandbits(128), version=4))

    def jwks(self) -> dict[str, Any]:
        return self.key.jwks()

    def rotate_key(self) -> str:
        """Replace the signing key (Saleor serves one key: the old kid disappears). New kid."""
        self.key = SigningKey()
        return self.key.kid

    def _app(self, ref: AppRef) -> App:
        global_id = ref.id if isinstance(ref, InstalledApp) else ref
        app = self.store.apps.get(int(from_global_id(global_id, "App")))
        if app is None or app.deleted:
            raise SaleorError("NOT_FOUND", f"Couldn't resolve to a node: {global_id}", "id")
        return app

    def _order(self, order_id: str) -> Order:
        order = self.store.orders.get(from_global_id(order_id, "Order"))
        if order is None:
            raise SaleorError("NOT_FOUND", f"Couldn't resolve to a node: {order_id}", "id")
        return order

    def _transaction(self, transaction_id: str) -> Transaction:
        transaction = self.store.transactions.get(from_global_id(transaction_id, "TransactionItem"))
        if transaction is None:
            raise SaleorError("NOT_FOUND", f"Couldn't resolve to a node: {transaction_id}", "id")
        return transaction

    # -- apps ----------------------------------------------------------------------------

    async def install(self, manifest_url: str) -> InstalledApp:
        """Install an app from its manifest like Saleor's install task (see ``install.py``).

        Queues APP_INSTALLED (to the app itself, if it subscribed). Raises
        ``InstallationFailed`` (the app is removed again) when the manifest is invalid or
        the ``tokenTargetUrl`` POST does not answer 2xx.
        """
        async with httpx.AsyncClient(
            timeout=self.options.timeout, follow_redirects=False, transport=self.options.transport
        ) as client:
            manifest = await self.installer.fetch_manifest(client, manifest_url)
            with self.store.lock:
                app = self.installer.create_app(manifest, manifest_url)
            try:
                await self.installer.send_token(client, app, self.api_url)
            except InstallationFailed:
                with self.store.lock:
                    del self.store.apps[app.pk]
                raise
        with self.store.lock:
            app.is_installed = True
            self.hub.emit("APP_INSTALLED", STAFF, app=app)
        return self.installer.installed(app)

    async def uninstall(self, app: AppRef) -> None:
        """``appDelete``: queues APP_DELETED to the app, then drops it, its token and webhooks
        (its other queued deliveries are dropped too)."""
        with self.store.lock:
            record = self._app(app)
            self.hub.emit("APP_DELETED", STAFF, app=record)
            record.deleted, record.is_active, record.token = True, False, None
            self.hub.drop_app(record.pk)

    def revoke_token(self, app: AppRef) -> None:
        """``appTokenDelete``: the app's token stops working (anonymous from then on)."""
        with self.store.lock:
            self._app(app).token = None

    # -- orders --------------------------------------------------------------------------

    def create_order(
        self,
        *,
        channel: str = "default-channel",
        currency: str = "EUR",
        lines: Sequence[LineSpec | Sequence[object]],
        shipping: tuple[object, object] | None = None,
        order_discount: object | None = None,
        shipping_method: str = "Standard",
        gift_cards: Sequence[tuple[str, object]] = (),
    ) -> CreatedOrder:
        """An order as after ``checkoutComplete``; queues ORDER_CREATED and ORDER_CONFIRMED.

        ``lines``: ``(sku, name, quantity, unit_gross[, tax_rate])`` tuples or ``LineSpec``;
        gross prices, tax included (``tax_rate`` a fraction, e.g. "0.25"). ``shipping``:
        ``(gross, tax_rate)``. ``order_discount``: a fixed gross amount spread over the
        lines and the shipping like Saleor's manual order discount. ``gift_cards``:
        ``(code, balance)`` of Saleor gift cards the shopper paid with at checkout; each pays
        what is left of the total up to its balance (``gift_card_total`` says how much), so a
        payment app's transaction authorizes only the rest.
        """
        specs = [parse_line_spec(spec) for spec in lines]
        if not specs:
            raise ValueError("an order needs at least one line")
        with self.store.lock:
            order = self.orders.create_order(
                specs,
                channel=channel,
                currency=currency,
                shipping=shipping,
                order_discount=order_discount,
                shipping_method=shipping_method,
                gift_cards=gift_cards,
            )
            return created_order(order)

    def gift_card_total(self, order_id: str) -> Decimal:
        """What the order's Saleor gift cards paid (major units): the transaction's share is
        the order total minus this."""
        with self.store.lock:
            order = self._order(order_id)
            return Decimal(self.orders.gift_card_total(order)).scaleb(-exponent(order.currency))

    def cancel_order(self, order_id: str) -> None:
        """``orderCancel``: status CANCELED; queues ORDER_CANCELLED and ORDER_UPDATED and no
        transaction request (the authorization stays open unless the app acts). Refused
        (CANNOT_CANCEL_ORDER) while a fulfillment is not CANCELED/RETURNED/REFUNDED/
        REFUNDED_AND_RETURNED/REPLACED, or the order is already CANCELED."""
        with self.store.lock:
            self.orders.cancel_order(self._order(order_id))

    def fulfill(
        self,
        order_id: str,
        lines: Mapping[str, int],
        tracking_number: str | None = None,
        *,
        notify_customer: bool = False,
    ) -> CreatedFulfillment:
        """``orderFulfill`` (auto-approved): a new FULFILLED fulfillment of ``{order line id:
        quantity}``. Queues FULFILLMENT_CREATED and ORDER_UPDATED, plus FULFILLMENT_APPROVED
        and ORDER_FULFILLED only when the order thereby became fully fulfilled.
        """
        with self.store.lock:
            fulfillment = self.orders.fulfill(
                self._order(order_id), lines, tracking_number or "", notify_customer
            )
            return created_fulfillment(fulfillment)

    def cancel_fulfillment(self, fulfillment_id: str) -> None:
        """``orderFulfillmentCancel``: status CANCELED, its quantities unfulfilled again.
        Queues FULFILLMENT_CANCELED and ORDER_UPDATED."""
        with self.store.lock:
            self.orders.cancel_fulfillment(fulfillment_id)

    def return_products(self, order_id: str, lines: Mapping[str, int]) -> CreatedFulfillment:
        """``orderFulfillmentReturnProducts`` (refund false) of ``{fulfillment line id:
        quantity}``: a new RETURNED fulfillment; the quantities leave their fulfillments and
        a fulfillment left without lines DISAPPEARS from the order. Queues ORDER_UPDATED only.
        """
        with self.store.lock:
            return created_fulfillment(self.orders.return_products(self._order(order_id), lines))

    # -- granted refunds -----------------------------------------------------------------

    def grant_refund(
        self,
        order_id: str,
        transaction_id: str,
        lines: Mapping[str, int | tuple[int, str | None]] | None = None,
        *,
        include_shipping: bool = False,
        amount: object | None = None,
        reason: str | None = None,
    ) -> str:
        """``orderGrantRefundCreate``; no webhook. Returns the OrderGrantedRefund id.

        ``lines``: order line id -> quantity (or ``(quantity, reason)``). The amount defaults
        to Σ unit gross × quantity (+ shipping) and is silently capped at the transaction's
        charged amount (the lines stay as given); an explicit ``amount`` above the charged
        amount is refused (AMOUNT_GREATER_THAN_AVAILABLE).
        """
        with self.store.lock:
            grant = self.orders.grant_refund(
                self._order(order_id),
                self._transaction(transaction_id),
                lines or {},
                include_shipping=include_shipping,
                amount=amount,
                reason=reason,
            )
            return to_global_id("OrderGrantedRefund", grant.pk)

    def request_refund_for_granted_refund(self, granted_refund_id: str) -> str:
        """``transactionRequestRefundForGrantedRefund``: queues TRANSACTION_REFUND_REQUESTED
        (with ``grantedRefund``) to the transaction's owner. Refused when the grant is
        PENDING/SUCCESS or the transaction has charged less than the grant. A 0.00 grant asks
        for the whole charged amount. Returns the REFUND_REQUEST event id.
        """
        with self.store.lock:
            grant = self.store.granted_refunds.get(
                int(from_global_id(granted_refund_id, "OrderGrantedRefund"))
            )
            if grant is None:
                raise SaleorError(
                    "NOT_FOUND", f"Couldn't resolve to a node: {granted_refund_id}", "grantedRefundId"
                )
            event = self.payments.request_grant_refund(grant)
            return to_global_id("TransactionEvent", event.pk)

    def granted_refund(self, granted_refund_id: str) -> dict[str, Any]:
        """The grant as plain data: ``status``, ``amount`` (Decimal), ``lines`` {order line id: qty}, ..."""
        with self.store.lock:
            grant = self.store.granted_refunds[int(from_global_id(granted_refund_id, "OrderGrantedRefund"))]
            return grant_view(grant, self.store.transactions[grant.transaction_token].currency)

    # -- transactions --------------------------------------------------------------------

    def create_transaction(
        self,
        order_id: str,
        app: AppRef,
        psp_reference: str,
        authorized_amount: object,
        *,
        name: str = "Klarna",
        message: str = "",
        available_actions: Iterable[str] = ("CHARGE", "CANCEL"),
    ) -> str:
        """``transactionCreate`` by ``app`` (which then owns it). As observed, the amount becomes
        an AUTHORIZATION_SUCCESS without pspReference plus an INFO event carrying
        ``psp_reference``. Queues ORDER_UPDATED. Returns the TransactionItem id.
        """
        with self.store.lock:
            record = self._app(app)
            if "HANDLE_PAYMENTS" not in record.permissions:
                raise SaleorError("PERMISSION_DENIED", "The app needs HANDLE_PAYMENTS.", "app")
            order = self._order(order_id)
            transaction = self.payments.create(
                order_uuid=order.uuid,
                app=record,
                psp_reference=psp_reference,
                authorized=to_minor(authorized_amount, order.currency),
                name=name,
                message=message,
                actions=list(available_actions),
            )
            return to_global_id("TransactionItem", transaction.token)

    def request_action(self, transaction_id: str, action: str, amount: object | None = None) -> str:
        """``transactionRequestAction`` by the staff user: CHARGE/CANCEL capped at the
        authorized amount, REFUND at the charged one (``amount=None``: all of it; a REFUND
        this way has ``grantedRefund: null``). Queues TRANSACTION_*_REQUESTED to the owner;
        no owner/webhook -> a FAILURE event and ``SaleorError``. Returns the *_REQUEST id.
        """
        with self.store.lock:
            transaction = self._transaction(transaction_id)
            minor = None if amount is None else to_minor(amount, transaction.currency)
            event = self.payments.request_action(transaction, action, minor, by=STAFF)
            return to_global_id("TransactionEvent", event.pk)

    def transaction(self, transaction_id: str) -> TransactionView:
        """The transaction's amounts (Decimal, major units) and events, oldest first."""
        with self.store.lock:
            return transaction_view(self._transaction(transaction_id))

    # -- GraphQL for tests ---------------------------------------------------------------

    def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """Run a GraphQL request in-process (``token=None``: as a superuser); the JSON answer."""
        with self.store.lock:
            app = self.graphql.app_for_token(f"Bearer {token}") if token else self._superuser()
        response, _ = self.graphql.run({"query": query, "variables": variables}, app)
        return response

    def _superuser(self) -> App:
        permissions = list(getattr(self.schema.get_type("PermissionEnum"), "values", {}))
        return App(0, "fake.superuser", "superuser", permissions, None, {}, "", self.store.now())

    def order(self, order_id: str) -> dict[str, Any]:
        """The order as GraphQL returns it (the fields of ``ORDER_QUERY``)."""
        data: dict[str, Any] | None = self.execute(ORDER_QUERY, {"id": order_id})["data"]["order"]
        assert data is not None, f"no order {order_id}"
        return data

    # -- Dashboard ------------------------------------------------------------------------

    def mint_dashboard_token(
        self,
        app: AppRef,
        user_permissions: Sequence[str] = ("MANAGE_APPS",),
        *,
        expires_in: int = 300,
        email: str = STAFF_EMAIL,
        user_id: str | None = None,
        is_staff: bool = True,
        audience: str | None = None,
        issued_at: datetime | None = None,
    ) -> str:
        """The app ``accessToken`` the Dashboard hands an app page: an RS256 JWT signed with
        the webhook key, claims as in saleor-protocol.md §5.2; ``permissions`` = app ∩ user
        permissions, ``aud`` = the manifest's ``audience`` unless given."""
        with self.store.lock:
            record = self._app(app)
            now = int((issued_at or self.store.now()).timestamp())
            claims: dict[str, Any] = {
                "iat": now,
                "owner": "saleor",
                "iss": self.api_url,
                "exp": now + expires_in,
                "token": secrets.token_urlsafe(9),
                "email": email,
                "type": "thirdparty",
                "user_id": user_id or to_global_id("User", STAFF_USER_PK),
                "is_staff": is_staff,
                "app": to_global_id("App", record.pk),
                "permissions": [p for p in record.permissions if p in user_permissions],
                "user_permissions": list(user_permissions),
            }
            aud = audience or record.manifest.get("audience")
            if aud:
                claims["aud"] = aud
            return self.key.encode_jwt(claims)

    # -- webhooks ------------------------------------------------------------------------

    async def deliver_pending(self, *, drain: bool = True) -> list[Attempt]:
        """Send the queued webhooks in queue order (shuffled with ``shuffle=True``); with
        ``drain`` also those their handling queued (e.g. ORDER_PAID after a CHARGE_SUCCESS
        answer). 5xx/timeouts wait for ``retry_failed()``. The attempts made."""
        return await self.hub.deliver_pending(drain=drain)

    async def retry_failed(self) -> list[Attempt]:
        """One more try for every delivery that got 5xx/timeout (Celery's next retry, without
        the wait); sync ones carry an EMPTY body. After ``max_retries`` retries Saleor gives up
        (sync: a FAILURE event "Failed to delivery request.")."""
        return await self.hub.retry_failed()

    @property
    def attempts(self) -> list[Attempt]:
        """Every HTTP request sent to an app's webhooks, in sending order."""
        return list(self.hub.attempts)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every (event, webhook) delivery with its state and attempts."""
        return list(self.hub.deliveries)

    def sent(self, event_type: str | None = None) -> list[Attempt]:
        return [a for a in self.hub.attempts if event_type is None or a.event_type == event_type]

    def pending(self, event_type: str | None = None) -> list[Delivery]:
        """Queued deliveries not yet sent, or waiting for a retry."""
        return [
            d
            for d in self.hub.deliveries
            if d.state in ("pending", "retry") and (event_type is None or d.event_type == event_type)
        ]


ORDER_QUERY = """
query FakeOrder($id: ID!) {
  order(id: $id) {
    id number status updatedAt
    total { gross { amount currency } net { amount } tax { amount } }
    shippingPrice { gross { amount } net { amount } tax { amount } }
    lines { id productSku quantity quantityFulfilled
      unitPrice { gross { amount } net { amount } }
      totalPrice { gross { amount } net { amount } tax { amount } } }
    fulfillments { id fulfillmentOrder status trackingNumber lines { id quantity orderLine { id } } }
    transactions { id authorizedAmount { amount } chargedAmount { amount } refundedAmount { amount } }
    grantedRefunds { id status amount { amount } shippingCostsIncluded
      lines { id quantity orderLine { id } } }
    chargeStatus authorizeStatus totalGrantedRefund { amount }
    giftCards { id last4CodeChars
      events(filter: {type: USED_IN_ORDER, orders: [$id]}) { type orderId
        balance { currentBalance { amount currency } oldCurrentBalance { amount currency } } } }
  }
}
"""
