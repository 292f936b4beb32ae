"""Answering the payment-app session webhooks (docs/saleor-payment-app.md).

The web layer has checked body size, installation, event and signature already. Saleor
counts only a 2xx JSON answer; anything else becomes its own "Failed to delivery request."
failure, which tells the shopper nothing. So every refusal KOM can explain is a 200 with
``AUTHORIZATION_FAILURE`` and the reason, and the gateway initialize always answers
``{"data": ...}`` (with ``errors`` inside when KOM cannot offer Klarna for this checkout).
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from adapters.saleor import responses
from adapters.saleor.payloads import PayloadError
from adapters.saleor.sessions import (
    TransactionSession,
    action_amount,
    checkout_from,
    parse_session,
    session_data,
)
from plugin.domain.money import to_major
from plugin.service.payment_sessions import CheckoutSnapshot, PaymentSessions, SessionOutcome, SessionRequest
from plugin.service.records import Installation

__all__ = ["SESSION_EVENTS", "answer_session"]

log = logging.getLogger("kom.saleor.payments")

SESSION_EVENTS = frozenset(
    {"PAYMENT_GATEWAY_INITIALIZE_SESSION", "TRANSACTION_INITIALIZE_SESSION", "TRANSACTION_PROCESS_SESSION"}
)


async def answer_session(
    event: str, body: bytes, installation: Installation, sessions: PaymentSessions
) -> Response:
    try:
        payload = parse_session(event, body)
        if payload.recipient is not None and payload.recipient.id != installation.app_id:
            raise PayloadError("the payload is addressed to another app")
        checkout = checkout_from(payload)
        if event == "PAYMENT_GATEWAY_INITIALIZE_SESSION":
            return await _gateway(installation, sessions, checkout)
        assert isinstance(payload, TransactionSession)
        amount, currency = action_amount(payload)
        data = session_data(payload)
        request = SessionRequest(
            checkout=checkout,
            transaction_id=payload.transaction.id,
            idempotency_key=payload.idempotency_key,
            amount=amount,
            currency=currency,
            authorization_token=data.authorization_token,
            provider_order_id=data.provider_order_id,
        )
    except PayloadError as exc:
        log.warning("%s for %s refused: %s", event.lower(), installation.api_url, exc)
        return _refused(event, f"KOM cannot take this payment: {exc}")
    try:
        if event == "TRANSACTION_INITIALIZE_SESSION":
            outcome = await sessions.initialize(installation, request)
        else:
            outcome = await sessions.process(installation, request)
    except Exception:
        # Unknown outcome (Klarna unreachable, timed out): nothing final was stored, so the
        # same idempotency key tries again and places the order at most once.
        log.exception("%s for %s failed", event.lower(), installation.api_url)
        return _refused(
            event, "KOM could not finish the Klarna payment just now (no money was taken); please try again."
        )
    return JSONResponse(_session_body(outcome))


async def _gateway(
    installation: Installation, sessions: PaymentSessions, checkout: CheckoutSnapshot
) -> Response:
    try:
        answer = await sessions.gateway_initialize(installation, checkout)
    except Exception:
        log.exception("payment_gateway_initialize_session for %s failed", installation.api_url)
        return _refused(
            "PAYMENT_GATEWAY_INITIALIZE_SESSION", "Klarna could not be reached in time; please try again."
        )
    return JSONResponse({"data": answer.data})


def _session_body(outcome: SessionOutcome) -> dict[str, object]:
    amount = None
    if outcome.amount is not None and outcome.currency is not None:
        amount = to_major(outcome.amount, outcome.currency)
    return responses.session_result(
        outcome.kind,
        message=outcome.message,
        psp_reference=outcome.psp_reference,
        amount=amount,
        external_url=outcome.external_url,
        # A failure also tells the storefront why, as saleor/apps' Stripe app does.
        data=outcome.data
        or ({"errors": [{"message": outcome.message}]} if outcome.kind == "failed" else None),
    )


def _refused(event: str, message: str) -> Response:
    if event == "PAYMENT_GATEWAY_INITIALIZE_SESSION":
        return JSONResponse({"data": {"provider": "klarna", "errors": [{"message": message}]}})
    return JSONResponse(
        responses.session_result("failed", message=message, data={"errors": [{"message": message}]})
    )
