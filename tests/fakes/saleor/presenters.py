"""State records -> GraphQL objects (plain dicts with ``__typename``).

graphql-core's default resolver reads dict keys and *calls* callables with
``(info, **args)``, so links to other objects (order -> transactions -> order ...) are
lambdas: nothing is built unless the query selects it, and cycles cost nothing. Every
field a real 3.23.28 payload carries (``captures-3.23.28/subscriptions.graphql``) is
present, so the captured subscription documents execute without errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .ids import from_global_id, to_global_id
from .money import amount, money, net_from_gross, taxed_money
from .orders import order_totals, unit_price
from .state import (
    STAFF_EMAIL,
    App,
    Fulfillment,
    FulfillmentLine,
    GiftCard,
    GiftCardEvent,
    GrantedRefund,
    GrantedRefundLine,
    Order,
    OrderLine,
    Principal,
    Store,
    Transaction,
    TransactionEvent,
)
from .transactions import PermissionDenied

__all__ = ["SALEOR_VERSION", "Presenter", "iso"]

SALEOR_VERSION = "3.23.28"
WAREHOUSE_UUID = "94b8ce44-7936-4665-ab4e-5f08a4c6c2f3"

Obj = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.isoformat()


def _lazy(build: Callable[[], Any]) -> Callable[..., Any]:
    return lambda _info, **_args: build()


def _metadata() -> Obj:
    return {
        "metadata": [],
        "privateMetadata": [],
        "metafield": lambda _info, **_args: None,
        "metafields": lambda _info, **_args: {},
        "privateMetafield": lambda _info, **_args: None,
        "privateMetafields": lambda _info, **_args: {},
    }


def _address(country: str) -> Obj:
    return {
        "__typename": "Address",
        "id": to_global_id("Address", 1),
        "firstName": "Sven",
        "lastName": "Svensson",
        "companyName": "",
        "streetAddress1": "Drottninggatan 2",
        "streetAddress2": "",
        "city": "STOCKHOLM",
        "cityArea": "",
        "postalCode": "111 51",
        "country": {"__typename": "CountryDisplay", "code": country, "country": country},
        "countryArea": "",
        "phone": "+46701234567",
        "isDefaultShippingAddress": None,
        "isDefaultBillingAddress": None,
        **_metadata(),
    }


class Presenter:
    """Builds GraphQL objects from ``store`` (call under ``store.lock``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- principals ----------------------------------------------------------------------

    def app(self, app: App | None) -> Obj | None:
        if app is None or app.deleted:
            return None
        manifest = app.manifest
        return {
            "__typename": "App",
            "id": to_global_id("App", app.pk),
            "identifier": app.identifier,
            "name": app.name,
            "permissions": [
                {"__typename": "Permission", "code": code, "name": code.replace("_", " ").capitalize()}
                for code in app.permissions
            ],
            "created": iso(app.created),
            "isActive": app.is_active,
            "type": "THIRDPARTY",
            "tokens": [],
            "webhooks": [],
            "aboutApp": manifest.get("about"),
            "dataPrivacy": manifest.get("dataPrivacy"),
            "dataPrivacyUrl": manifest.get("dataPrivacyUrl"),
            "homepageUrl": manifest.get("homepageUrl"),
            "supportUrl": manifest.get("supportUrl"),
            "configurationUrl": manifest.get("configurationUrl"),
            "appUrl": manifest.get("appUrl"),
            "manifestUrl": app.manifest_url,
            "version": manifest.get("version"),
            "accessToken": None,
            "author": manifest.get("author"),
            "extensions": [],
            "brand": None,
            "breakerState": "CLOSED",
            "breakerLastStateChange": None,
            "problems": lambda _info, **_args: [],
            **_metadata(),
        }

    def user(self, pk: int) -> Obj:
        return {
            "__typename": "User",
            "id": to_global_id("User", pk),
            "email": STAFF_EMAIL,
            "firstName": "",
            "lastName": "",
            "isStaff": True,
            "isActive": True,
            "isConfirmed": True,
            **_metadata(),
        }

    def principal(self, principal: Principal | None) -> Obj | None:
        if principal is None:
            return None
        kind, pk = principal
        return self.user(pk) if kind == "User" else self.app(self.store.apps.get(pk))

    def _created_by(self, app_pk: int | None, user_pk: int | None) -> Obj | None:
        if app_pk is not None:
            return self.app(self.store.apps.get(app_pk))
        return self.user(user_pk) if user_pk is not None else None

    # -- order ---------------------------------------------------------------------------

    def _channel(self, order: Order) -> Obj:
        channel = next(c for c in self.store.channels.values() if c.pk == order.channel_pk)
        return {
            "__typename": "Channel",
            "id": to_global_id("Channel", channel.pk),
            "slug": channel.slug,
            "name": channel.slug.replace("-", " ").title(),
            "isActive": True,
            "currencyCode": channel.currency,
            "hasOrders": True,
            "defaultCountry": {
                "__typename": "CountryDisplay",
                "code": channel.country,
                "country": channel.country,
            },
            "countries": [],
            "warehouses": [],
            **_metadata(),
        }

    def _warehouse(self, country: str) -> Obj:
        return {
            "__typename": "Warehouse",
            "id": to_global_id("Warehouse", WAREHOUSE_UUID),
            "slug": "default-warehouse",
            "name": "Default Warehouse",
            "email": "",
            "isPrivate": True,
            "companyName": "",
            "address": _address(country),
            "clickAndCollectOption": "DISABLED",
            "externalReference": None,
            **_metadata(),
        }

    def order(self, order: Order) -> Obj:
        cur = order.currency
        store = self.store
        totals = order_totals(store, order)
        channel = self._channel(order)
        country = channel["defaultCountry"]["code"]
        shipping_method = (
            {
                "__typename": "ShippingMethod",
                "id": to_global_id("ShippingMethod", 1),
                "name": order.shipping_method_name,
            }
            if order.shipping_method_name is not None
            else None
        )
        discounts = []
        if order.discount:
            discounts.append(
                {
                    "__typename": "OrderDiscount",
                    "id": to_global_id("OrderDiscount", order.token),
                    "type": "MANUAL",
                    "name": "Manual discount",
                    "translatedName": None,
                    "valueType": "FIXED",
                    "value": amount(order.discount, cur),
                    "amount": money(order.discount, cur),
                    "reason": None,
                }
            )
        return {
            "__typename": "Order",
            "id": to_global_id("Order", order.uuid),
            "number": str(order.number),
            "token": order.token,
            "created": iso(order.created),
            "updatedAt": iso(order.updated_at),
            "status": order.status,
            "statusDisplay": order.status.replace("_", " ").capitalize(),
            "user": None,
            "userEmail": order.user_email,
            "trackingClientId": "",
            "billingAddress": _address(country),
            "shippingAddress": _address(country) if order.shipping_method_name is not None else None,
            "shippingMethodName": order.shipping_method_name,
            "collectionPointName": None,
            "channel": channel,
            "fulfillments": _lazy(lambda: [self.fulfillment(f) for f in order.fulfillments]),
            "lines": _lazy(lambda: [self.line(line) for line in order.lines]),
            "actions": [],
            "shippingMethods": [],
            "availableCollectionPoints": [],
            "invoices": [],
            "original": None,
            "origin": "CHECKOUT",
            "isPaid": totals.charge_status in ("FULL", "OVERCHARGED"),
            "paymentStatus": totals.payment_status,
            "paymentStatusDisplay": totals.payment_status.replace("_", " ").capitalize(),
            "authorizeStatus": totals.authorize_status,
            "chargeStatus": totals.charge_status,
            "taxExemption": False,
            "transactions": _lazy(
                lambda: [self.transaction(store.transactions[t]) for t in order.transaction_tokens]
            ),
            "payments": [],
            "total": taxed_money(totals.total_gross, totals.total_net, cur),
            "undiscountedTotal": taxed_money(
                totals.undiscounted_total_gross, totals.undiscounted_total_net, cur
            ),
            "shippingMethod": shipping_method,
            "deliveryMethod": shipping_method,
            "undiscountedShippingPrice": money(order.undiscounted_shipping_gross, cur),
            "shippingPrice": taxed_money(order.shipping_gross, order.shipping_net, cur),
            "shippingTaxRate": float(order.shipping_tax_rate),
            "shippingTaxClass": None,
            "shippingTaxClassName": None,
            "shippingTaxClassMetadata": [],
            "shippingTaxClassPrivateMetadata": [],
            "voucher": None,
            "voucherCode": None,
            "giftCards": _lazy(lambda: [self.gift_card(store.gift_cards[pk]) for pk in order.gift_card_pks]),
            "customerNote": "",
            "weight": {"__typename": "Weight", "unit": "KG", "value": 0.0},
            "redirectUrl": None,
            "subtotal": taxed_money(totals.subtotal_gross, totals.subtotal_net, cur),
            "canFinalize": True,
            "totalAuthorized": money(totals.authorized, cur),
            "totalCaptured": money(totals.charged, cur),
            "totalCharged": money(totals.charged, cur),
            "totalCanceled": money(totals.canceled, cur),
            "events": [],
            "totalBalance": money(totals.balance, cur),
            "isShippingRequired": any(line.is_shipping_required for line in order.lines),
            "languageCode": "en",
            "languageCodeEnum": "EN",
            "discount": money(order.discount, cur) if order.discount else None,
            "discountName": None,
            "translatedDiscountName": None,
            "discounts": discounts,
            "errors": [],
            "displayGrossPrices": True,
            "externalReference": None,
            "checkoutId": to_global_id("Checkout", order.token),
            "grantedRefunds": _lazy(
                lambda: [self.granted_refund(store.granted_refunds[pk]) for pk in order.granted_refund_pks]
            ),
            "totalGrantedRefund": money(totals.granted, cur),
            "totalRefunded": money(totals.refunded, cur),
            "totalRefundPending": money(totals.refund_pending, cur),
            "totalAuthorizePending": money(totals.authorize_pending, cur),
            "totalChargePending": money(totals.charge_pending, cur),
            "totalCancelPending": money(totals.cancel_pending, cur),
            "totalRemainingGrant": money(totals.remaining_grant, cur),
            **_metadata(),
        }

    def line(self, line: OrderLine) -> Obj:
        order = self.store.orders[line.order_uuid]
        cur = order.currency
        unit_gross, unit_net = unit_price(line)
        base_unit_net = net_from_gross(line.undiscounted_unit_gross, line.tax_rate)
        base_total = line.undiscounted_unit_gross * line.quantity
        variant_id = to_global_id("ProductVariant", line.variant_pk)
        return {
            "__typename": "OrderLine",
            "id": to_global_id("OrderLine", line.uuid),
            "productName": line.product_name,
            "variantName": line.variant_name,
            "translatedProductName": line.product_name,
            "translatedVariantName": line.variant_name,
            "productSku": line.sku,
            "productVariantId": variant_id,
            "isShippingRequired": line.is_shipping_required,
            "quantity": line.quantity,
            "quantityFulfilled": line.quantity_fulfilled,
            "quantityToFulfill": line.quantity - line.quantity_fulfilled,
            "taxRate": float(line.tax_rate),
            "thumbnail": None,
            "unitPrice": taxed_money(unit_gross, unit_net, cur),
            "undiscountedUnitPrice": taxed_money(line.undiscounted_unit_gross, base_unit_net, cur),
            # Line-level discounts only; an order-level share shows in unitPrice alone.
            "unitDiscount": money(0, cur),
            "unitDiscountReason": None,
            "unitDiscountValue": 0.0,
            "unitDiscountType": "FIXED",
            "totalPrice": taxed_money(line.total_gross, line.total_net, cur),
            "undiscountedTotalPrice": taxed_money(base_total, net_from_gross(base_total, line.tax_rate), cur),
            "isPriceOverridden": None,
            "priceOverrideReason": None,
            "variant": {
                "__typename": "ProductVariant",
                "id": variant_id,
                "sku": line.sku,
                "name": line.variant_name,
                "trackInventory": True,
                "quantityLimitPerCustomer": None,
                "product": {
                    "__typename": "Product",
                    "id": to_global_id("Product", line.variant_pk),
                    "name": line.product_name,
                    **_metadata(),
                },
                **_metadata(),
            },
            "allocations": None,
            "saleId": None,
            "taxClass": None,
            "taxClassName": None,
            "taxClassMetadata": [],
            "taxClassPrivateMetadata": [],
            "voucherCode": None,
            "isGift": line.is_gift,
            "discounts": [],
            **_metadata(),
        }

    def fulfillment(self, fulfillment: Fulfillment) -> Obj:
        order = self.store.orders[fulfillment.order_uuid]
        channel = next(c for c in self.store.channels.values() if c.pk == order.channel_pk)
        return {
            "__typename": "Fulfillment",
            "id": to_global_id("Fulfillment", fulfillment.pk),
            "fulfillmentOrder": fulfillment.fulfillment_order,
            "status": fulfillment.status,
            "statusDisplay": fulfillment.status.replace("_", " ").capitalize(),
            "trackingNumber": fulfillment.tracking_number,
            "created": iso(fulfillment.created),
            "lines": _lazy(lambda: [self.fulfillment_line(line) for line in fulfillment.lines]),
            "warehouse": self._warehouse(channel.country),
            "shippingRefundedAmount": None,
            "totalRefundedAmount": None,
            "reason": None,
            "reasonReference": None,
            **_metadata(),
        }

    def fulfillment_line(self, line: FulfillmentLine) -> Obj:
        return {
            "__typename": "FulfillmentLine",
            "id": to_global_id("FulfillmentLine", line.pk),
            "quantity": line.quantity,
            "orderLine": _lazy(lambda: self.line(self.store.order_lines[line.order_line_uuid])),
            "reason": None,
            "reasonReference": None,
        }

    # -- gift cards ----------------------------------------------------------------------

    def gift_card(self, card: GiftCard) -> Obj:
        cur = card.currency

        def events(info: Any, filter: dict[str, Any] | None = None) -> list[Obj]:
            # GiftCard.resolve_events: MANAGE_GIFT_CARD sees everything, MANAGE_ORDERS only
            # USED_IN_ORDER / REFUNDED_IN_ORDER; then the filter's type and orders.
            requestor: App | None = (info.context or {}).get("app") if info is not None else None
            permissions = set(requestor.permissions) if requestor is not None else set()
            if requestor is not None and not permissions & {"MANAGE_GIFT_CARD", "MANAGE_ORDERS"}:
                raise PermissionDenied(["MANAGE_GIFT_CARD", "MANAGE_ORDERS"])
            chosen = list(card.events)
            if "MANAGE_GIFT_CARD" not in permissions:
                chosen = [e for e in chosen if e.type in ("USED_IN_ORDER", "REFUNDED_IN_ORDER")]
            if filter and filter.get("type"):
                chosen = [e for e in chosen if e.type == filter["type"]]
            if filter and filter.get("orders"):
                wanted = set()
                for global_id in filter["orders"]:
                    with contextlib.suppress(ValueError):  # Saleor skips ids of other types
                        wanted.add(from_global_id(global_id, "Order"))
                chosen = [e for e in chosen if e.order_uuid in wanted]
            return [self.gift_card_event(card, e) for e in chosen]

        return {
            "__typename": "GiftCard",
            "id": to_global_id("GiftCard", card.pk),
            "displayCode": card.code[-4:],
            "last4CodeChars": card.code[-4:],
            "code": card.code,
            "created": iso(card.created),
            "createdBy": None,
            "usedBy": None,
            "createdByEmail": None,
            "usedByEmail": card.used_by_email,
            "assignedTo": None,
            "assignedToEmail": None,
            "lastUsedOn": iso(card.last_used_on) if card.last_used_on else None,
            "expiryDate": None,
            "app": None,
            "product": None,
            "events": events,
            "tags": [],
            "boughtInChannel": None,
            "isActive": card.is_active,
            "initialBalance": money(card.initial_balance, cur),
            "currentBalance": money(card.current_balance, cur),
            "user": None,
            "endDate": None,
            "startDate": None,
            **_metadata(),
        }

    def gift_card_event(self, card: GiftCard, event: GiftCardEvent) -> Obj:
        cur = card.currency
        order = self.store.orders.get(event.order_uuid) if event.order_uuid else None
        balance = None
        if event.current_balance is not None:
            balance = {
                "__typename": "GiftCardEventBalance",
                "initialBalance": None,
                "currentBalance": money(event.current_balance, cur),
                "oldInitialBalance": None,
                "oldCurrentBalance": (
                    money(event.old_current_balance, cur) if event.old_current_balance is not None else None
                ),
                "oldAssignedTo": None,
                "currentAssignedTo": None,
                "oldAssignedToEmail": None,
                "currentAssignedToEmail": None,
            }
        return {
            "__typename": "GiftCardEvent",
            "id": to_global_id("GiftCardEvent", event.pk),
            "date": iso(event.date),
            "type": event.type,
            "user": None,
            "app": None,
            "message": None,
            "email": None,
            "orderId": to_global_id("Order", event.order_uuid) if event.order_uuid else None,
            "orderNumber": str(order.number) if order is not None else None,
            "tags": None,
            "oldTags": None,
            "balance": balance,
            "assignedTo": None,
            "expiryDate": None,
            "oldExpiryDate": None,
        }

    # -- payments ------------------------------------------------------------------------

    def transaction(self, transaction: Transaction) -> Obj:
        cur = transaction.currency
        store = self.store
        return {
            "__typename": "TransactionItem",
            "id": to_global_id("TransactionItem", transaction.token),
            "token": transaction.token,
            "createdAt": iso(transaction.created_at),
            "modifiedAt": iso(transaction.modified_at),
            "actions": list(transaction.actions),
            "authorizedAmount": money(transaction.authorized, cur),
            "authorizePendingAmount": money(transaction.authorize_pending, cur),
            "chargedAmount": money(transaction.charged, cur),
            "chargePendingAmount": money(transaction.charge_pending, cur),
            "refundedAmount": money(transaction.refunded, cur),
            "refundPendingAmount": money(transaction.refund_pending, cur),
            "canceledAmount": money(transaction.canceled, cur),
            "cancelPendingAmount": money(transaction.cancel_pending, cur),
            "name": transaction.name,
            "message": transaction.message,
            "pspReference": transaction.psp_reference,
            "externalUrl": transaction.external_url,
            "order": _lazy(lambda: self.order(store.orders[transaction.order_uuid])),
            "checkout": None,
            # Newest first, as a real 3.23.28 lists them.
            "events": _lazy(lambda: [self.event(e) for e in sorted(transaction.events, key=lambda e: -e.pk)]),
            "createdBy": self._created_by(transaction.app_pk, transaction.user_pk),
            "paymentMethodDetails": None,
            "reason": None,
            "reasonReference": None,
            **_metadata(),
        }

    def event(self, event: TransactionEvent) -> Obj:
        transaction = self.store.transactions[event.transaction_token]
        return {
            "__typename": "TransactionEvent",
            "id": to_global_id("TransactionEvent", event.pk),
            "createdAt": iso(event.created_at),
            "pspReference": event.psp_reference,
            "message": event.message,
            "reasonReference": None,
            "externalUrl": event.external_url,
            "amount": money(event.amount, transaction.currency),
            "type": event.type,
            "createdBy": self._created_by(event.app_pk, event.user_pk),
            "idempotencyKey": event.idempotency_key,
        }

    def granted_refund(self, grant: GrantedRefund) -> Obj:
        store = self.store
        transaction = store.transactions[grant.transaction_token]
        cur = transaction.currency
        return {
            "__typename": "OrderGrantedRefund",
            "id": to_global_id("OrderGrantedRefund", grant.pk),
            "createdAt": iso(grant.created_at),
            "updatedAt": iso(grant.updated_at),
            "amount": money(grant.amount, cur),
            "reason": grant.reason,
            "reasonReference": None,
            "user": self.user(grant.user_pk) if grant.user_pk is not None else None,
            "app": None,
            "shippingCostsIncluded": grant.shipping_costs_included,
            "lines": _lazy(lambda: [self.granted_refund_line(line) for line in grant.lines]),
            "status": grant.status,
            "transactionEvents": _lazy(
                lambda: [
                    self.event(e)
                    for e in sorted(transaction.events, key=lambda e: -e.pk)
                    if e.related_granted_refund_pk == grant.pk
                ]
            ),
            "transaction": _lazy(lambda: self.transaction(transaction)),
        }

    def granted_refund_line(self, line: GrantedRefundLine) -> Obj:
        return {
            "__typename": "OrderGrantedRefundLine",
            "id": to_global_id("OrderGrantedRefundLine", line.pk),
            "quantity": line.quantity,
            "orderLine": _lazy(lambda: self.line(self.store.order_lines[line.order_line_uuid])),
            "reason": line.reason,
            "reasonReference": None,
        }

    # -- webhook event roots -------------------------------------------------------------

    def event_root(
        self,
        event_type: str,
        *,
        recipient: App,
        principal: Principal | None,
        issued_at: datetime,
        order: Order | None = None,
        fulfillment: Fulfillment | None = None,
        transaction: Transaction | None = None,
        request: TransactionEvent | None = None,
        grant: GrantedRefund | None = None,
        app: App | None = None,
        notify_customer: bool = False,
    ) -> Obj:
        """The ``Subscription.event`` object a webhook's document is executed against."""
        root: Obj = {
            "__typename": "".join(word.capitalize() for word in event_type.split("_")),
            "issuedAt": iso(issued_at),
            "version": SALEOR_VERSION,
            "issuingPrincipal": self.principal(principal),
            "recipient": self.app(recipient),
        }
        if order is not None:
            root["order"] = _lazy(lambda: self.order(order))
        if fulfillment is not None:
            root["fulfillment"] = _lazy(lambda: self.fulfillment(fulfillment))
            root["notifyCustomer"] = notify_customer
        if app is not None:
            root["app"] = self.app(app)
        if transaction is not None:
            root["transaction"] = _lazy(lambda: self.transaction(transaction))
        if request is not None and transaction is not None:
            root["action"] = {
                "__typename": "TransactionAction",
                "actionType": {"CHARGE_REQUEST": "CHARGE", "REFUND_REQUEST": "REFUND"}.get(
                    request.type, "CANCEL"
                ),
                "amount": amount(request.amount, transaction.currency),
                "currency": transaction.currency,
            }
            if request.type == "REFUND_REQUEST":
                root["grantedRefund"] = (
                    self.granted_refund(grant) if grant is not None else self._no_grant(issued_at)
                )
        return root

    @staticmethod
    def _no_grant(issued_at: datetime) -> Obj:
        """``grantedRefund`` of a plain ``transactionRequestAction(REFUND)``.

        Saleor 3.23 resolves it to ``SyncWebhookControlContext(None)``, whose ``amount`` is
        null: graphql nulls the whole ``grantedRefund`` and the payload carries the error
        "Cannot return null for non-nullable field OrderGrantedRefund.amount." (observed). The
        fields before ``amount`` in the observed document resolved; their values never show.
        """
        return {
            "__typename": "OrderGrantedRefund",
            "id": to_global_id("OrderGrantedRefund", 0),
            "createdAt": iso(issued_at),
            "updatedAt": iso(issued_at),
            "amount": None,
        }
