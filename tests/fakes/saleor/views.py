"""Plain values the driver hands to tests: ids Saleor would show, Decimal amounts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .ids import to_global_id
from .money import exponent
from .state import Fulfillment, GrantedRefund, Order, Transaction

__all__ = [
    "CreatedFulfillment",
    "CreatedOrder",
    "EventView",
    "TransactionView",
    "created_fulfillment",
    "created_order",
    "grant_view",
    "transaction_view",
]


def _decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


@dataclass(frozen=True)
class CreatedOrder:
    id: str
    number: str
    line_ids: list[str]  # in the order the lines were given
    gift_card_ids: tuple[str, ...] = ()  # the Saleor gift cards that paid part of it

    def line(self, index: int) -> str:
        return self.line_ids[index]


@dataclass(frozen=True)
class CreatedFulfillment:
    id: str
    line_ids: dict[str, str]  # order line id -> fulfillment line id


@dataclass(frozen=True)
class EventView:
    id: str
    type: str
    psp_reference: str
    amount: Decimal
    message: str
    external_url: str
    created_by: str | None  # an App or User global id


@dataclass(frozen=True)
class TransactionView:
    id: str
    psp_reference: str
    actions: list[str]
    authorized: Decimal
    charged: Decimal
    refunded: Decimal
    canceled: Decimal
    authorize_pending: Decimal
    charge_pending: Decimal
    refund_pending: Decimal
    cancel_pending: Decimal
    events: list[EventView]  # oldest first (GraphQL lists them newest first)

    def of_type(self, event_type: str) -> list[EventView]:
        return [e for e in self.events if e.type == event_type]


def created_order(order: Order) -> CreatedOrder:
    return CreatedOrder(
        id=to_global_id("Order", order.uuid),
        number=str(order.number),
        line_ids=[to_global_id("OrderLine", line.uuid) for line in order.lines],
        gift_card_ids=tuple(to_global_id("GiftCard", pk) for pk in order.gift_card_pks),
    )


def created_fulfillment(fulfillment: Fulfillment) -> CreatedFulfillment:
    return CreatedFulfillment(
        id=to_global_id("Fulfillment", fulfillment.pk),
        line_ids={
            to_global_id("OrderLine", line.order_line_uuid): to_global_id("FulfillmentLine", line.pk)
            for line in fulfillment.lines
        },
    )


def _who(app_pk: int | None, user_pk: int | None) -> str | None:
    if app_pk is not None:
        return to_global_id("App", app_pk)
    return to_global_id("User", user_pk) if user_pk is not None else None


def transaction_view(t: Transaction) -> TransactionView:
    cur = t.currency
    return TransactionView(
        id=to_global_id("TransactionItem", t.token),
        psp_reference=t.psp_reference,
        actions=list(t.actions),
        authorized=_decimal(t.authorized, cur),
        charged=_decimal(t.charged, cur),
        refunded=_decimal(t.refunded, cur),
        canceled=_decimal(t.canceled, cur),
        authorize_pending=_decimal(t.authorize_pending, cur),
        charge_pending=_decimal(t.charge_pending, cur),
        refund_pending=_decimal(t.refund_pending, cur),
        cancel_pending=_decimal(t.cancel_pending, cur),
        events=[
            EventView(
                id=to_global_id("TransactionEvent", e.pk),
                type=e.type,
                psp_reference=e.psp_reference,
                amount=_decimal(e.amount, cur),
                message=e.message,
                external_url=e.external_url,
                created_by=_who(e.app_pk, e.user_pk),
            )
            for e in sorted(t.events, key=lambda e: (e.created_at, e.pk))
        ],
    )


def grant_view(grant: GrantedRefund, currency: str) -> dict[str, Any]:
    return {
        "id": to_global_id("OrderGrantedRefund", grant.pk),
        "status": grant.status,
        "amount": _decimal(grant.amount, currency),
        "reason": grant.reason,
        "shipping_costs_included": grant.shipping_costs_included,
        "lines": {to_global_id("OrderLine", gl.order_line_uuid): gl.quantity for gl in grant.lines},
    }
