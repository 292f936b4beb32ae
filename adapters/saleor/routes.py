"""Saleor's HTTP surface: manifest, install (register), and webhooks.

A webhook request only: caps the body, verifies the JWS over the raw bytes against the
installation's keys, checks event and recipient, records what must be done durably, and
answers. The worker does everything slow. Nothing unverified is stored or acted on.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.saleor import jws, responses
from adapters.saleor.install import register
from adapters.saleor.keys import JwksUnavailable, signing_keys
from adapters.saleor.manifest import WEBHOOKS, WebhookSpec, build_manifest
from adapters.saleor.payloads import (
    AppDeleted,
    EmptyPayload,
    Event,
    OrderEvent,
    PayloadError,
    TransactionChargeRequested,
    TransactionRefundRequested,
    TransactionRequest,
    parse_payload,
    refund_request_from,
)
from adapters.saleor.snapshot import created_by_kom
from plugin import __version__
from plugin.composition import Services
from plugin.service.records import Installation
from plugin.service.requests import refund_to_json
from plugin.web.body import read_capped

log = logging.getLogger("kom.saleor")


def saleor_routes() -> list[Route]:
    return [
        Route("/api/manifest", manifest, methods=["GET"]),
        Route("/api/register", register, methods=["POST"]),
        Route("/api/webhooks/{name}", webhook, methods=["POST"]),
    ]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def manifest(request: Request) -> Response:
    # URLs come from KOM_PUBLIC_URL, never from Host (Saleor may send Host without the port).
    return JSONResponse(build_manifest(_services(request).settings.public_url, __version__))


async def webhook(request: Request) -> Response:
    services = _services(request)
    spec = WEBHOOKS.get(request.path_params["name"])
    if spec is None:
        raise HTTPException(404, "No such webhook.")
    body = await read_capped(request)
    installation = await _installation(request, services)
    event = request.headers.get("saleor-event", "")
    if event.lower() != spec.saleor_event:
        raise HTTPException(400, f"This endpoint takes {spec.saleor_event}, not {event or 'no event'}.")
    await _verify(request, services, installation, body)
    try:
        payload = parse_payload(spec.event, body)
    except EmptyPayload:
        # Saleor retries a transaction request after a 5xx with an empty (signed) body.
        log.warning(
            "%s for %s arrived empty (Saleor's retry); nothing to act on", spec.name, installation.api_url
        )
        return _empty_retry_answer(spec)
    except PayloadError as exc:
        raise HTTPException(400, str(exc)) from exc
    if payload.recipient is not None and payload.recipient.id != installation.app_id:
        raise HTTPException(403, "The payload is addressed to another app.")
    if payload.errors:
        log.warning("%s payload carries subscription errors: %s", spec.name, payload.errors)
    return await _handle(spec, payload, installation, services)


async def _installation(request: Request, services: Services) -> Installation:
    api_url = request.headers.get("saleor-api-url", "").strip()
    installation = await services.store.installation_by_url(api_url) if api_url else None
    if installation is None:
        raise HTTPException(401, "Unknown installation: KOM is not installed for this Saleor-Api-Url.")
    return installation


async def _verify(request: Request, services: Services, installation: Installation, body: bytes) -> None:
    signature = request.headers.get("saleor-signature", "")
    if not signature:
        raise HTTPException(401, "Missing Saleor-Signature.")
    # An unknown kid is looked up once more in keys fetched after this request arrived
    # (adapters/saleor/keys.py): a real rotation verifies, a forged kid is 401.
    try:
        await signing_keys(services).verified(installation, lambda keys: jws.verify(signature, body, keys))
    except jws.SignatureError as exc:
        raise HTTPException(401, f"Bad signature: {exc}") from exc
    except JwksUnavailable as exc:
        # 503: Saleor retries (10 s, 20 s, ...), by when its keys may be reachable again.
        raise HTTPException(503, f"Unknown signing key; {exc}") from exc


def _empty_retry_answer(spec: WebhookSpec) -> Response:
    if not spec.sync:
        return JSONResponse({})
    _, failure = responses.RESULTS[spec.event]
    message = (
        "Saleor re-sent this request without its content (a known Saleor retry bug), so KOM cannot tell "
        "which request it was. If the first attempt did not go through, request it again."
    )
    return JSONResponse(responses.result(failure, amount=None, message=message))


async def _handle(
    spec: WebhookSpec, payload: Event, installation: Installation, services: Services
) -> Response:
    store = services.store
    if isinstance(payload, OrderEvent):
        if payload.order is None:
            raise HTTPException(400, "The payload has no order.")
        await store.touch_order(installation.id, payload.order.id, number=payload.order.number)
        return JSONResponse({})
    if isinstance(payload, AppDeleted):
        await store.delete_installation(installation.api_url)
        log.info("uninstalled from %s: installation, settings and secrets dropped", installation.api_url)
        return JSONResponse({})
    assert isinstance(payload, TransactionRequest)
    return await _transaction_request(spec, payload, installation, services)


async def _transaction_request(
    spec: WebhookSpec, payload: TransactionRequest, installation: Installation, services: Services
) -> Response:
    _, failure = responses.RESULTS[spec.event]
    transaction = payload.transaction
    creator = transaction.created_by if transaction else None
    # Saleor sends transaction requests only to the owning app; a creator that is clearly
    # another app (neither this App id nor KOM's identifier) is refused all the same.
    foreign = creator is not None and not created_by_kom(
        {"__typename": creator.typename or "App", "id": creator.id, "identifier": creator.identifier},
        installation.app_id,
    )
    if transaction is None or transaction.order is None or foreign:
        message = "KOM manages only the payments it owns; this transaction belongs to another app."
        return JSONResponse(responses.result(failure, amount=None, message=message))
    order_id = transaction.order.id
    kind, request_id, body = _request(payload)
    settings = await services.store.settings_for(installation.id, _channel(transaction))
    if isinstance(payload, TransactionChargeRequested) and (
        settings is None or settings.capture_mode == "on_fulfillment"
    ):
        message = (
            "KOM captures each parcel as its own invoice when you fulfil it; fulfilled parcels are "
            "captured already, so there is nothing to capture by hand."
        )
        await services.store.touch_order(installation.id, order_id, number=transaction.order.number)
        return JSONResponse(responses.result(failure, amount=None, message=message))
    psp_reference = f"kom-{kind}:{request_id}"
    recorded = await services.store.record_request(
        installation_id=installation.id,
        platform_order_id=order_id,
        kind=kind,
        request_id=request_id,
        psp_reference=psp_reference,
        transaction_id=transaction.id,
        body=body,
        created_at=payload.issued_at or services.store.clock(),
    )
    await services.store.touch_order(installation.id, order_id, number=transaction.order.number)
    log.info("%s recorded for order %s as %s", spec.name, order_id, recorded.psp_reference)
    # The outcome follows through transactionEventReport with this same pspReference.
    return JSONResponse(responses.pending(recorded.psp_reference))


def _channel(transaction: Any) -> str | None:
    order = transaction.order
    return order.channel.slug if order is not None and order.channel is not None else None


def _request(payload: TransactionRequest) -> tuple[str, str, dict[str, Any]]:
    """(kind, request id, body to record) of a transaction request."""
    if isinstance(payload, TransactionRefundRequested):
        refund = refund_request_from(payload)
        return "refund", refund.id, refund_to_json(refund)
    kind = "charge" if isinstance(payload, TransactionChargeRequested) else "cancel"
    assert payload.transaction is not None
    issued = payload.issued_at.isoformat() if payload.issued_at else ""
    request_id = f"{payload.transaction.id}:{issued}:{payload.action.amount}"
    return kind, request_id, {"amount": str(payload.action.amount), "currency": payload.action.currency}
