"""Saleor's HTTP surface: manifest, install (register), and webhooks.

A webhook request only: caps the body, verifies the JWS over the raw bytes against the
installation's keys, checks event and recipient, records what must be done durably, and
answers. The worker does everything slow. Nothing unverified is stored or acted on.

Transaction requests are sync: Saleor reads the JSON of any answer below 500 as the
outcome, and after a 5xx retries with an *empty* body (3.23.28) that nobody can act on. So
every refusal of one — malformed, unverifiable, addressed elsewhere — is a 4xx whose body
is the action's ``*_FAILURE`` with the reason, which the merchant then sees in Saleor.

The app factory (plugin/web/app.py) hands in what the endpoints need as
``app.state.services`` (``SaleorServices``); this module does not know the composition root.
"""

from __future__ import annotations

import logging

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
    TransactionRequest,
    parse_payload,
)
from adapters.saleor.requests import read_request
from adapters.saleor.services import SaleorServices
from adapters.saleor.session_routes import SESSION_EVENTS, answer_session
from adapters.saleor.snapshot import created_by_kom
from plugin import __version__
from plugin.service.records import Installation, RequestConflict
from plugin.web.body import read_capped

log = logging.getLogger("kom.saleor")


def saleor_routes() -> list[Route]:
    return [
        Route("/api/manifest", manifest, methods=["GET"]),
        Route("/api/register", register, methods=["POST"]),
        Route("/api/webhooks/{name}", webhook, methods=["POST"]),
    ]


def _services(request: Request) -> SaleorServices:
    services: SaleorServices = request.app.state.services
    return services


async def manifest(request: Request) -> Response:
    # URLs come from KOM_PUBLIC_URL, never from Host (Saleor may send Host without the port).
    return JSONResponse(build_manifest(_services(request).settings.public_url, __version__))


async def webhook(request: Request) -> Response:
    services = _services(request)
    spec = WEBHOOKS.get(request.path_params["name"])
    if spec is None:
        raise HTTPException(404, "No such webhook.")
    try:
        return await _webhook(request, spec, services)
    except HTTPException as exc:
        if not spec.sync:
            raise
        # Never >= 500 for a transaction request: Saleor's retry of it would come empty.
        # (Only signature checks answer 5xx: "cannot verify it now" is a 401 here.)
        status = exc.status_code if exc.status_code < 500 else 401
        if spec.event in SESSION_EVENTS:
            # Saleor reads no refusal body of a session webhook; its own failure stands.
            return JSONResponse({"error": exc.detail}, status_code=status)
        return _refusal(spec, status, exc.detail)


async def _webhook(request: Request, spec: WebhookSpec, services: SaleorServices) -> Response:
    body = await read_capped(request)
    installation = await _installation(request, services)
    event = request.headers.get("saleor-event", "")
    if event.lower() != spec.saleor_event:
        raise HTTPException(400, f"This endpoint takes {spec.saleor_event}, not {event or 'no event'}.")
    await _verify(request, services, installation, body)
    if spec.event in SESSION_EVENTS:
        return await answer_session(spec.event, body, installation, services.payment_sessions())
    try:
        payload = parse_payload(spec.event, body)
    except EmptyPayload:
        # Saleor retries a transaction request after a 5xx with an empty (signed) body.
        log.warning(
            "%s for %s arrived empty (Saleor's retry); nothing to act on", spec.name, installation.api_url
        )
        return _empty_retry_answer(spec)
    except PayloadError as exc:
        log.warning("%s for %s refused: %s", spec.name, installation.api_url, exc)
        raise HTTPException(400, f"KOM cannot act on this request: {exc}") from exc
    if payload.recipient is not None and payload.recipient.id != installation.app_id:
        raise HTTPException(403, "The payload is addressed to another app.")
    if payload.errors:
        log.warning("%s payload carries subscription errors: %s", spec.name, payload.errors)
    return await _handle(spec, payload, installation, services)


def _refusal(spec: WebhookSpec, status: int, reason: str) -> Response:
    """A refused transaction request: its action's failure with the reason, which Saleor records.

    ``error`` repeats the reason in the shape of KOM's other refusals; Saleor ignores keys
    it does not know (its response models keep pydantic's default, extra="ignore").
    """
    _, failure = responses.RESULTS[spec.event]
    body = responses.result(failure, amount=None, message=reason)
    return JSONResponse({**body, "error": reason}, status_code=status)


async def _installation(request: Request, services: SaleorServices) -> Installation:
    api_url = request.headers.get("saleor-api-url", "").strip()
    installation = await services.store.installation_by_url(api_url) if api_url else None
    if installation is None:
        raise HTTPException(401, "Unknown installation: KOM is not installed for this Saleor-Api-Url.")
    return installation


async def _verify(
    request: Request, services: SaleorServices, installation: Installation, body: bytes
) -> None:
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
        "This request arrived without its content (Saleor re-sends a request that way after a "
        "failed attempt), so KOM cannot tell which request it is and did nothing for it. "
        "If the first attempt did not go through, request it again."
    )
    return JSONResponse(responses.result(failure, amount=None, message=message))


async def _handle(
    spec: WebhookSpec, payload: Event, installation: Installation, services: SaleorServices
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
    spec: WebhookSpec, payload: TransactionRequest, installation: Installation, services: SaleorServices
) -> Response:
    _, failure = responses.RESULTS[spec.event]
    transaction = payload.transaction
    creator = transaction.created_by if transaction else None
    # Saleor sends transaction requests only to the owning app; a creator that is clearly
    # another app (neither this App id nor KOM's identifier) is refused all the same.
    if creator is not None and not created_by_kom(
        {"__typename": creator.typename or "App", "id": creator.id, "identifier": creator.identifier},
        installation.app_id,
    ):
        message = "KOM manages only the payments it owns; this transaction belongs to another app."
        return JSONResponse(responses.result(failure, amount=None, message=message))
    try:
        request = read_request(spec.event, payload)
    except PayloadError as exc:
        log.warning("%s for %s refused: %s", spec.name, installation.api_url, exc)
        return _refusal(spec, 400, f"KOM cannot act on this request: {exc}")
    store = services.store
    settings = await store.settings_for(installation.id, _channel(payload))
    if isinstance(payload, TransactionChargeRequested) and (
        settings is None or settings.capture_mode == "on_fulfillment"
    ):
        message = (
            "KOM captures each parcel as its own invoice when you fulfil it; fulfilled parcels are "
            "captured already, so there is nothing to capture by hand."
        )
        await store.touch_order(installation.id, request.order_id, number=request.order_number)
        return JSONResponse(responses.result(failure, amount=None, message=message))
    try:
        recorded = await store.record_request(
            installation_id=installation.id,
            platform_order_id=request.order_id,
            kind=request.kind,
            request_id=request.request_id,
            psp_reference=request.psp_reference,
            transaction_id=request.transaction_id,
            body=request.body,
            created_at=request.issued_at,
        )
    except RequestConflict as exc:
        log.warning("%s for %s refused: %s", spec.name, installation.api_url, exc)
        return _refusal(spec, 409, str(exc))
    await store.touch_order(installation.id, request.order_id, number=request.order_number)
    log.info("%s recorded for order %s as %s", spec.name, request.order_id, recorded.psp_reference)
    # The outcome follows through transactionEventReport with this same pspReference.
    return JSONResponse(responses.pending(recorded.psp_reference))


def _channel(payload: TransactionRequest) -> str | None:
    order = payload.transaction.order if payload.transaction else None
    return order.channel.slug if order is not None and order.channel is not None else None
