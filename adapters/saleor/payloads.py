"""Webhook payloads as Saleor sends them (the ``event`` object of our subscriptions).

Models are lenient on purpose: unknown fields are ignored (so a richer subscription, or a
newer Saleor, still parses) and nearly everything is optional, because the payload is only
a hint — the worker reads the order itself before acting. What must hold is checked where
it is used (``refund_request_from``), and the web layer decides what a missing
``recipient`` means. Amounts are parsed from the JSON text into ``Decimal`` exactly.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from plugin.domain.money import MoneyError, to_minor
from plugin.domain.snapshot import RefundLine, RefundRequest

__all__ = [
    "PAYLOADS",
    "AppDeleted",
    "EmptyPayload",
    "Event",
    "FulfillmentApproved",
    "FulfillmentCanceled",
    "FulfillmentCreated",
    "FulfillmentEvent",
    "GrantedRefund",
    "OrderCancelled",
    "OrderEvent",
    "PayloadError",
    "TransactionCancelationRequested",
    "TransactionChargeRequested",
    "TransactionRefundRequested",
    "TransactionRequest",
    "parse_payload",
    "refund_request_from",
]


class PayloadError(ValueError):
    """The body is not the payload this webhook should carry."""


class EmptyPayload(PayloadError):
    """An empty body, correctly signed: Saleor's retry after a >=500 answer (3.23.28 bug).

    Act on nothing; KOM's own state from the first delivery is what counts.
    """


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)


class Ref(_Model):
    id: str


class Money(_Model):
    amount: Decimal
    currency: str | None = None


class Channel(_Model):
    slug: str | None = None


class OrderRef(_Model):
    id: str
    number: str | None = None
    channel: Channel | None = None


class FulfillmentRef(_Model):
    id: str
    status: str | None = None


class Principal(_Model):
    """``createdBy``: an App or a User (``id`` only for the members we select)."""

    typename: str | None = Field(default=None, alias="__typename")
    id: str | None = None
    identifier: str | None = None


class TransactionAction(_Model):
    action_type: str
    amount: Decimal
    currency: str


class TransactionRef(_Model):
    id: str
    psp_reference: str | None = None
    created_by: Principal | None = None
    authorized_amount: Money | None = None
    charged_amount: Money | None = None
    order: OrderRef | None = None


class GrantedRefundLine(_Model):
    id: str
    quantity: int
    reason: str | None = None
    order_line: Ref


class GrantedRefund(_Model):
    id: str
    amount: Money
    reason: str | None = None
    shipping_costs_included: bool = False
    lines: list[GrantedRefundLine] | None = None


class Event(_Model):
    """Fields every subscription selects (``issuedAt version recipient { id }``)."""

    TYPENAME: ClassVar[str] = ""
    typename: str | None = Field(default=None, alias="__typename")
    issued_at: datetime | None = None
    version: str | None = None
    recipient: Ref | None = None
    # Saleor adds "errors" when a resolver of the subscription failed; worth logging.
    errors: list[Any] | None = None


class OrderEvent(Event):
    """An event that only says "look at this order again"."""

    order: OrderRef | None = None


class FulfillmentEvent(OrderEvent):
    fulfillment: FulfillmentRef | None = None


class OrderCancelled(OrderEvent):
    TYPENAME = "OrderCancelled"


class FulfillmentCreated(FulfillmentEvent):
    TYPENAME = "FulfillmentCreated"


class FulfillmentApproved(FulfillmentEvent):
    TYPENAME = "FulfillmentApproved"


class FulfillmentCanceled(FulfillmentEvent):
    TYPENAME = "FulfillmentCanceled"


class TransactionRequest(Event):
    action: TransactionAction
    transaction: TransactionRef | None = None


class TransactionChargeRequested(TransactionRequest):
    TYPENAME = "TransactionChargeRequested"


class TransactionCancelationRequested(TransactionRequest):
    TYPENAME = "TransactionCancelationRequested"


class TransactionRefundRequested(TransactionRequest):
    TYPENAME = "TransactionRefundRequested"
    # Only set by transactionRequestRefundForGrantedRefund; null for amount-only refunds.
    granted_refund: GrantedRefund | None = None


class AppDeleted(Event):
    TYPENAME = "AppDeleted"
    app: Ref | None = None


PAYLOADS: dict[str, type[Event]] = {
    "FULFILLMENT_CREATED": FulfillmentCreated,
    "FULFILLMENT_APPROVED": FulfillmentApproved,
    "FULFILLMENT_CANCELED": FulfillmentCanceled,
    "ORDER_CANCELLED": OrderCancelled,
    "TRANSACTION_CHARGE_REQUESTED": TransactionChargeRequested,
    "TRANSACTION_REFUND_REQUESTED": TransactionRefundRequested,
    "TRANSACTION_CANCELATION_REQUESTED": TransactionCancelationRequested,
    "APP_DELETED": AppDeleted,
}


def parse_payload(event: str, body: bytes) -> Event:
    """Parse ``body`` as the payload of ``event`` (enum name or ``Saleor-Event`` value).

    Raises ``EmptyPayload`` for an empty body and ``PayloadError`` for anything else that
    is not this event's payload (bad JSON, wrong shape, other ``__typename``).
    """
    model = PAYLOADS.get(event.upper())
    if model is None:
        raise PayloadError(f"KOM does not subscribe to {event!r}")
    if not body.strip():
        raise EmptyPayload(f"{event.lower()} arrived with an empty body (Saleor retry after a 5xx)")
    try:
        payload = model.model_validate_json(body)
    except ValidationError as exc:
        raise PayloadError(f"{event.lower()} payload is invalid: {_summary(exc)}") from exc
    if payload.typename is not None and payload.typename != model.TYPENAME:
        raise PayloadError(f"{event.lower()} carried a {payload.typename!r} payload")
    return payload


def refund_request_from(payload: TransactionRefundRequested) -> RefundRequest:
    """The refund KOM should carry out for a TRANSACTION_REFUND_REQUESTED.

    With a granted refund: its lines and shipping flag, and never more than the grant —
    Saleor caps grants at the charged amount silently and may ask for an ``action.amount``
    that disagrees with the grant, so the amount is the smaller of the two. Without one
    (amount-only/goodwill refund): no lines, ``action.amount``, and an id derived from the
    transaction, ``issuedAt`` and amount, stable across Saleor's byte-identical retries.
    """
    action = payload.action
    if action.action_type != "REFUND":
        raise PayloadError(f"refund request with action {action.action_type!r}")
    if payload.issued_at is None:
        raise PayloadError("refund request without issuedAt")
    currency = action.currency
    requested = _minor(action.amount, currency, "action.amount")
    grant = payload.granted_refund
    if grant is None:
        if payload.transaction is None:
            raise PayloadError("amount-only refund request without a transaction")
        identity = f"{payload.transaction.id}|{payload.issued_at.isoformat()}|{requested} {currency.upper()}"
        return RefundRequest(
            id=f"saleor-refund:{hashlib.sha256(identity.encode()).hexdigest()[:32]}",
            created_at=payload.issued_at,
            amount=requested,
        )
    if grant.amount.currency is not None and grant.amount.currency.upper() != currency.upper():
        raise PayloadError(f"granted refund in {grant.amount.currency}, action in {currency}")
    granted = _minor(grant.amount.amount, currency, "grantedRefund.amount")
    if any(line.quantity < 0 for line in grant.lines or ()):
        raise PayloadError(f"granted refund {grant.id} has a negative line quantity")
    return RefundRequest(
        id=grant.id,
        created_at=payload.issued_at,
        lines=tuple(
            RefundLine(line.order_line.id, line.quantity) for line in grant.lines or () if line.quantity
        ),
        include_shipping=grant.shipping_costs_included,
        amount=min(requested, granted),
        reason=grant.reason or None,
        requested_amount=requested,
    )


def _minor(amount: Decimal, currency: str, what: str) -> int:
    try:
        minor = to_minor(amount, currency)
    except MoneyError as exc:
        raise PayloadError(f"{what}: {exc}") from exc
    if minor < 0:
        raise PayloadError(f"{what} is negative")
    return minor


def _summary(exc: ValidationError) -> str:
    # Field paths and messages only: never echo the (possibly large) input back.
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg']}" for e in exc.errors()[:5])
