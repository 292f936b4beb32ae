"""The payment-app session webhooks as KOM reads them, and the checkout they carry.

PAYMENT_GATEWAY_INITIALIZE_SESSION, TRANSACTION_INITIALIZE_SESSION and
TRANSACTION_PROCESS_SESSION (docs/saleor-payment-app.md). Unlike the order hints, these
payloads are acted on directly: the checkout in ``sourceObject`` is what the Klarna session
and order are built from, so every amount is checked (currency, exponent, range) and the
lines must add up to the checkout's total, exactly, or KOM refuses the payment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from adapters.saleor.payloads import (
    MAX_QUANTITY,
    Amount,
    Id,
    PayloadError,
    Principal,
    Ref,
    Timestamp,
    _first_line,
    _minor,
    _no_constant,
    _summary,
)
from plugin.service.payment_sessions import CheckoutLine, CheckoutSnapshot

__all__ = [
    "GatewayInitialize",
    "SessionEvent",
    "TransactionSession",
    "checkout_from",
    "parse_session",
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, strict=True, alias_generator=to_camel, populate_by_name=True
    )


class _Money(_Model):
    amount: Amount
    currency: str | None = None


class _Taxed(_Model):
    gross: _Money
    net: _Money
    tax: _Money


class _Product(_Model):
    name: str


class _Variant(_Model):
    id: Id
    sku: str | None = None
    name: str = ""
    product: _Product | None = None


class _Line(_Model):
    id: Id
    quantity: int
    variant: _Variant
    unit_price: _Taxed
    total_price: _Taxed


class _Country(_Model):
    code: str


class _Address(_Model):
    country: _Country | None = None


class _Channel(_Model):
    slug: str
    currency_code: str
    default_country: _Country | None = None


class _Source(_Model):
    typename: str = Field(alias="__typename")
    id: Id | None = None
    email: str | None = None
    language_code: str | None = None
    channel: _Channel | None = None
    billing_address: _Address | None = None
    shipping_address: _Address | None = None
    lines: list[_Line] | None = None
    shipping_price: _Taxed | None = None
    total_price: _Taxed | None = None


class _Action(_Model):
    amount: Amount
    currency: str
    action_type: str


class _Transaction(_Model):
    id: Id
    psp_reference: str | None = None
    created_by: Principal | None = None


class SessionEvent(_Model):
    typename: str | None = Field(default=None, alias="__typename")
    issued_at: Timestamp | None = None
    version: str | None = None
    recipient: Ref | None = None
    source_object: _Source
    # The storefront's paymentGateway.data, verbatim: any JSON (lax: it is not Saleor's).
    data: Any = None
    errors: list[Any] | None = None


class GatewayInitialize(SessionEvent):
    amount: Amount | None = None


class TransactionSession(SessionEvent):
    merchant_reference: str
    action: _Action
    transaction: _Transaction
    # Only TRANSACTION_INITIALIZE_SESSION has one; a process session is keyed by the transaction.
    idempotency_key: str | None = None


_MODELS: dict[str, tuple[type[SessionEvent], str]] = {
    "PAYMENT_GATEWAY_INITIALIZE_SESSION": (GatewayInitialize, "PaymentGatewayInitializeSession"),
    "TRANSACTION_INITIALIZE_SESSION": (TransactionSession, "TransactionInitializeSession"),
    "TRANSACTION_PROCESS_SESSION": (TransactionSession, "TransactionProcessSession"),
}


def parse_session(event: str, body: bytes) -> SessionEvent:
    """The payload of session webhook ``event``; ``PayloadError`` says why it is not one."""
    model, typename = _MODELS[event.upper()]
    if not body.strip():
        raise PayloadError(f"{event.lower()} arrived with an empty body")
    try:
        document = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"{event.lower()} payload is not JSON: {_first_line(exc)}") from None
    try:
        payload = model.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(f"{event.lower()} payload is invalid: {_summary(exc)}") from exc
    if payload.typename is not None and payload.typename != typename:
        raise PayloadError(f"{event.lower()} carried a {payload.typename!r} payload")
    initialize = event.upper() == "TRANSACTION_INITIALIZE_SESSION"
    if initialize and isinstance(payload, TransactionSession) and not payload.idempotency_key:
        raise PayloadError("transaction_initialize_session without idempotencyKey")
    return payload


def checkout_from(payload: SessionEvent) -> CheckoutSnapshot:
    """The checkout in the payload, amounts in minor units; ``PayloadError`` if KOM cannot pay it.

    Only a checkout is paid through KOM's session (an order paid later has no Klarna session
    to come from). Lines and shipping must add up to the total exactly: the Klarna order has
    to be the checkout, to the minor unit, or captures would not match what Saleor charges.
    """
    source = payload.source_object
    if source.typename != "Checkout":
        raise PayloadError(f"KOM takes payments for checkouts, not for a {source.typename}")
    if source.id is None or source.channel is None or source.total_price is None or source.lines is None:
        raise PayloadError("the checkout in the payload lacks its id, channel, lines or total")
    currency = source.channel.currency_code
    lines = tuple(_line(line, currency) for line in source.lines)
    if not lines:
        raise PayloadError("the checkout has no lines")
    shipping = _taxed(source.shipping_price, currency, "shippingPrice") if source.shipping_price else (0, 0)
    total, total_tax = _taxed(source.total_price, currency, "totalPrice")
    goods = sum(line.total_amount for line in lines)
    if goods + shipping[0] != total:
        raise PayloadError(
            f"the checkout's lines ({goods}) and shipping ({shipping[0]}) do not add up to its total "
            f"({total}, minor units of {currency}); KOM cannot build an exact Klarna order from it"
        )
    country = _country(source)
    return CheckoutSnapshot(
        id=source.id,
        channel=source.channel.slug,
        currency=currency,
        country=country,
        locale=_locale(source.language_code, country),
        email=source.email,
        lines=lines,
        shipping_amount=shipping[0],
        shipping_tax_amount=shipping[1],
        total_amount=total,
        total_tax_amount=total_tax,
    )


def action_amount(payload: TransactionSession) -> tuple[int, str]:
    """The requested amount in minor units, and its currency."""
    currency = payload.action.currency
    return _minor(payload.action.amount, currency, "action.amount"), currency


def _line(line: _Line, currency: str) -> CheckoutLine:
    if not 0 < line.quantity <= MAX_QUANTITY:
        raise PayloadError(f"checkout line {line.id} has an impossible quantity ({line.quantity})")
    total, tax = _taxed(line.total_price, currency, f"line {line.id} totalPrice")
    unit, _ = _taxed(line.unit_price, currency, f"line {line.id} unitPrice")
    variant = line.variant
    product = variant.product.name if variant.product else ""
    name = " / ".join(part for part in (product, variant.name) if part) or variant.sku or variant.id
    return CheckoutLine(
        line_id=line.id,
        reference=variant.sku or variant.id,
        name=name[:255],
        quantity=line.quantity,
        unit_price=unit,
        total_amount=total,
        total_tax_amount=tax,
    )


def _taxed(money: _Taxed, currency: str, what: str) -> tuple[int, int]:
    """(gross, tax) in minor units; gross = net + tax, as Saleor's TaxedMoney always is."""
    for part in (money.gross, money.net, money.tax):
        if part.currency is not None and part.currency != currency:
            raise PayloadError(f"{what} is in {part.currency}, the checkout in {currency}")
    gross = _minor(money.gross.amount, currency, f"{what}.gross")
    net = _minor(money.net.amount, currency, f"{what}.net")
    tax = _minor(money.tax.amount, currency, f"{what}.tax")
    if net + tax != gross:
        raise PayloadError(f"{what}: net {net} + tax {tax} is not gross {gross}")
    return gross, tax


def _country(source: _Source) -> str | None:
    for address in (source.billing_address, source.shipping_address):
        if address is not None and address.country is not None and address.country.code:
            return address.country.code
    channel = source.channel
    return channel.default_country.code if channel and channel.default_country else None


def _locale(language_code: str | None, country: str | None) -> str | None:
    # Saleor's LanguageCodeEnum: EN, EN_US, SV_SE, ... -> "en-US", "sv-SE" (Klarna's locale).
    if not language_code:
        return None
    language, _, region = language_code.partition("_")
    region = region or (country or "")
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


@dataclass(frozen=True)
class SessionData:
    """What the storefront sent in ``paymentGateway.data``, as KOM reads it."""

    authorization_token: str | None
    provider_order_id: str | None


def session_data(payload: SessionEvent) -> SessionData:
    data = payload.data if isinstance(payload.data, dict) else {}
    token = data.get("authorizationToken")
    order = data.get("providerOrderId")
    for name, value in (("authorizationToken", token), ("providerOrderId", order)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > 2048):
            raise PayloadError(f"data.{name} must be a non-empty string")
    if token and order:
        raise PayloadError("send either data.authorizationToken or data.providerOrderId, not both")
    return SessionData(token, order)
