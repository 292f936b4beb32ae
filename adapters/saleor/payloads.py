"""Webhook payloads as Saleor sends them (the ``event`` object of our subscriptions).

Models ignore unknown fields (so a richer subscription, or a newer Saleor, still parses)
and nearly everything is optional, because the payload is only a hint — the worker reads
the order itself before acting. But what is there must have the type Saleor gives it
(strict: no ``"2"`` for 2, no ``true`` for 1), and ids must be usable as ids (short, no
control characters), so nothing odd reaches the database. What a transaction request must
satisfy to be acted on is checked where it is used (``check_action``,
``refund_request_from``); the web layer decides what a missing ``recipient`` means.

The JSON is decoded with ``parse_float=Decimal``: amounts never pass through float, so
``19.999999999999999`` stays what it says (and is refused as finer than a cent) instead of
becoming 20.00.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
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
    "check_action",
    "parse_payload",
    "refund_request_from",
]

# Largest amount (minor units) and quantity KOM takes: what its INTEGER columns hold, far
# above any provider's limit (Klarna: 200 000 000 per capture or refund).
MAX_MINOR = 2**31 - 1
MAX_QUANTITY = 2**31 - 1
MAX_ID = 128  # Saleor's ids are base64 of "<Type>:<uuid or int>", under 80 characters
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CURRENCY = re.compile(r"[A-Z]{3}")
# The action each sync event may carry (TransactionActionEnum).
ACTION_TYPES = {
    "TRANSACTION_CHARGE_REQUESTED": "CHARGE",
    "TRANSACTION_REFUND_REQUESTED": "REFUND",
    "TRANSACTION_CANCELATION_REQUESTED": "CANCEL",
}


class PayloadError(ValueError):
    """The body is not the payload this webhook should carry."""


class EmptyPayload(PayloadError):
    """An empty body, correctly signed: Saleor's retry after a >=500 answer (3.23.28 bug).

    Act on nothing; KOM's own state from the first delivery is what counts.
    """


def _json_number(value: object) -> object:
    # JSON numbers arrive as int or Decimal (parse_float=Decimal); a string, a boolean or
    # a float (Saleor's Decimal scalars are JSON numbers) is not an amount.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("must be a JSON number")
    return Decimal(value)


def _timestamp(value: object) -> object:
    # ISO 8601 text with a UTC offset, as Saleor writes issuedAt; never epoch numbers.
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return moment


def _text(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if not value or len(value) > limit or _CONTROL.search(value):
            raise ValueError(f"must be 1 to {limit} characters without control characters")
        return value

    return AfterValidator(check)


Amount = Annotated[Decimal, BeforeValidator(_json_number)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Id = Annotated[str, _text(MAX_ID)]
Slug = Annotated[str, _text(255)]
OrderNumber = Annotated[str, _text(64)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, strict=True, alias_generator=to_camel, populate_by_name=True
    )


class Ref(_Model):
    id: Id


class Money(_Model):
    amount: Amount
    currency: str | None = None


class Channel(_Model):
    slug: Slug | None = None
    currency_code: str | None = None


class OrderRef(_Model):
    id: Id
    number: OrderNumber | None = None
    channel: Channel | None = None


class FulfillmentRef(_Model):
    id: Id
    status: str | None = None


_NO_MONEY = Money(amount=Decimal(0))


class Principal(_Model):
    """``createdBy``: an App or a User (``id`` only for the members we select)."""

    typename: str | None = Field(default=None, alias="__typename")
    id: Id | None = None
    identifier: str | None = None


class TransactionAction(_Model):
    action_type: str
    amount: Amount
    currency: str


class TransactionRef(_Model):
    id: Id
    psp_reference: str | None = None
    created_by: Principal | None = None
    authorized_amount: Money | None = None
    charged_amount: Money | None = None
    order: OrderRef | None = None


class GrantedRefundLine(_Model):
    id: Id
    quantity: int
    reason: str | None = None
    order_line: Ref


class GrantedRefund(_Model):
    id: Id
    amount: Money
    reason: str | None = None
    shipping_costs_included: bool = False
    lines: list[GrantedRefundLine] | None = None


class Event(_Model):
    """Fields every subscription selects (``issuedAt version recipient { id }``)."""

    TYPENAME: ClassVar[str] = ""
    typename: str | None = Field(default=None, alias="__typename")
    issued_at: Timestamp | None = None
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
        document = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, 5000-digit ints, deep nesting
        raise PayloadError(f"{event.lower()} payload is not JSON: {_first_line(exc)}") from None
    try:
        payload = model.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(f"{event.lower()} payload is invalid: {_summary(exc)}") from exc
    if payload.typename is not None and payload.typename != model.TYPENAME:
        raise PayloadError(f"{event.lower()} carried a {payload.typename!r} payload")
    return payload


def check_action(payload: TransactionRequest, event: str) -> int:
    """The requested amount in minor units, once the request is one KOM can act on.

    Raises ``PayloadError`` with the reason otherwise: another action than the event's, no
    ``issuedAt`` (KOM could not tell a new request from a re-delivery), a currency that is
    no ISO 4217 code or not the transaction's, or an amount that is negative, finer than the
    currency allows or beyond ``MAX_MINOR``.
    """
    action = payload.action
    expected = ACTION_TYPES[event.upper()]
    if action.action_type != expected:
        raise PayloadError(f"a {event.lower()} must ask for {expected}, not {action.action_type!r}")
    if payload.issued_at is None:
        raise PayloadError(f"{event.lower()} without issuedAt: KOM cannot tell it from a re-delivery")
    currency = action.currency
    if not _CURRENCY.fullmatch(currency):
        raise PayloadError(f"action.currency {currency!r} is not an ISO 4217 currency code")
    for what, other in _currencies(payload):
        if other is not None and other != currency:
            raise PayloadError(f"action in {currency}, but {what} is in {other}")
    return _minor(action.amount, currency, "action.amount")


def _currencies(payload: TransactionRequest) -> list[tuple[str, str | None]]:
    # The order's currency (its channel's) and the transaction's, where the payload has them.
    transaction = payload.transaction
    if transaction is None:
        return []
    channel = transaction.order.channel if transaction.order else None
    return [
        ("the order", channel.currency_code if channel else None),
        ("the transaction's authorizedAmount", (transaction.authorized_amount or _NO_MONEY).currency),
        ("the transaction's chargedAmount", (transaction.charged_amount or _NO_MONEY).currency),
    ]


def refund_request_from(payload: TransactionRefundRequested) -> RefundRequest:
    """The refund KOM should carry out for a TRANSACTION_REFUND_REQUESTED.

    With a granted refund: its lines and shipping flag, and never more than the grant —
    Saleor caps grants at the charged amount silently and may ask for an ``action.amount``
    that disagrees with the grant, so the amount is the smaller of the two. Without one
    (amount-only/goodwill refund): no lines, ``action.amount``, and an id derived from the
    transaction, ``issuedAt`` and amount, stable across Saleor's byte-identical retries.
    Raises ``PayloadError`` for anything ``check_action`` refuses, a grant in another
    currency, a negative or oversized line quantity, or a grant whose lines are all 0.
    """
    requested = check_action(payload, "TRANSACTION_REFUND_REQUESTED")
    assert payload.issued_at is not None  # check_action refuses a request without it
    currency = payload.action.currency
    grant = payload.granted_refund
    if grant is None:
        if payload.transaction is None:
            raise PayloadError("amount-only refund request without a transaction")
        identity = f"{payload.transaction.id}|{payload.issued_at.isoformat()}|{requested} {currency}"
        return RefundRequest(
            id=f"saleor-refund:{hashlib.sha256(identity.encode()).hexdigest()[:32]}",
            created_at=payload.issued_at,
            amount=requested,
        )
    if grant.amount.currency is not None and grant.amount.currency != currency:
        raise PayloadError(f"granted refund in {grant.amount.currency}, action in {currency}")
    granted = _minor(grant.amount.amount, currency, "grantedRefund.amount")
    lines = grant.lines or ()
    for line in lines:
        if not 0 <= line.quantity <= MAX_QUANTITY:
            sign = "a negative" if line.quantity < 0 else "an impossible"
            raise PayloadError(
                f"granted refund {grant.id} has {sign} quantity ({line.quantity}) on {line.id}"
            )
    kept = tuple(RefundLine(line.order_line.id, line.quantity) for line in lines if line.quantity)
    if lines and not kept:
        # Lines granted, none of them with a unit: refunding the amount anyway would refund
        # lines nobody chose. (A 0 next to real lines is noise and dropped.)
        raise PayloadError(f"granted refund {grant.id} has lines, but all with quantity 0")
    return RefundRequest(
        id=grant.id,
        created_at=payload.issued_at,
        lines=kept,
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
        raise PayloadError(f"{what} is negative ({amount} {currency})")
    if minor > MAX_MINOR:
        raise PayloadError(f"{what} {amount} {currency} is beyond any amount KOM handles")
    return minor


def _no_constant(name: str) -> object:
    # json.loads accepts NaN and Infinity, which are not JSON and no amount.
    raise ValueError(f"{name} is not a JSON number")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _summary(exc: ValidationError) -> str:
    # Field paths and messages only: never echo the (possibly large) input back.
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()[:5]
    )
