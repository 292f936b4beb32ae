"""Starlette app of the sandbox: Klarna Order Management API plus a small admin API.

Order Management (HTTP Basic auth, see auth.py), under /ordermanagement/v1/orders/{order_id}:
  GET    ""                                  200 order (captures carry the ledger's refunded_amount)
  POST   /captures                           201, headers Capture-Id + Location
  GET    /captures, /captures/{capture_id}   200
  POST   /captures/{capture_id}/shipping-info 204
  POST   /refunds                            201, headers Refund-Id + Location
  GET    /refunds/{refund_id}                200
  POST   /cancel, /release-remaining-authorization, /extend-authorization-time   204
         (extend: expires_at = now + 28 days, at most 180 days after creation; 403 NOT_ALLOWED
          when expired, cancelled, fully captured or already at that limit)

Every Order Management request passes, in this order: request log -> auth (401) ->
rate limit / fault queue -> idempotency memory -> route. See faults.py and idempotency.py;
the routes themselves live in om_routes.py and admin.py.

lost_response on the wire: the operation is executed and remembered under its idempotency
key, then the TCP connection is aborted before a single response byte is written. An httpx
client sees httpx.RemoteProtocolError("Server disconnected without sending a response.").
In-process (httpx.ASGITransport, no socket) the app raises that same exception instead,
which ASGITransport passes through to the caller.

Admin API (no auth; sandbox only):
  POST   /_sandbox/orders               create an AUTHORIZED order; body {purchase_currency,
                                        order_amount, order_lines?, order_id?, purchase_country?,
                                        locale?, merchant_reference1?, merchant_reference2?} -> 201 order
  GET    /_sandbox/orders               all orders
  GET    /_sandbox/orders/{id}/ledger   per refund: allocated capture id / klarna_reference, or reason
  GET    /_sandbox/faults               pending faults
  POST   /_sandbox/faults               queue a fault or a list of faults: {kind, method?, path?,
                                        status?, error_code?, message?, seconds?, limit?, reset?, count?}
  DELETE /_sandbox/faults               drop all pending faults
  GET    /_sandbox/requests             log of Order Management requests: method, path,
                                        idempotency_key, status, at, fault, replayed, dropped
  DELETE /_sandbox/requests             clear that log
  GET    /_sandbox/clock                {"now": ...}
  POST   /_sandbox/clock                {"advance_seconds": N} moves sandbox time forward
  POST   /_sandbox/reset                forget everything
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from .admin import AdminRoutes
from .auth import DEMO_CREDENTIALS, Credentials
from .errors import ApiError, error_body
from .faults import Fault
from .idempotency import ScopedKey, StoredResponse, remembered
from .om_routes import OrderManagementRoutes
from .state import Clock, RequestRecord, SandboxState

OM_PREFIX = "/ordermanagement/"
IDEMPOTENCY_HEADER = "klarna-idempotency-key"
WRITE_METHODS = frozenset({"POST", "PATCH"})


def create_app(
    state: SandboxState | None = None,
    *,
    credentials: Credentials = DEMO_CREDENTIALS,
    clock: Clock | None = None,
) -> SandboxApp:
    """A sandbox app. `clock` (returning aware datetimes) replaces the state's clock."""
    state = state or SandboxState()
    if clock is not None:
        state.clock = clock
    return SandboxApp(state, credentials)


class SandboxApp(Starlette):
    def __init__(self, state: SandboxState, credentials: Credentials) -> None:
        om, admin = OrderManagementRoutes(state), AdminRoutes(state)
        super().__init__(
            routes=om.routes() + admin.routes(),
            exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        )
        self.sandbox = state
        self.credentials = credentials
        self._window = (0, 0)  # (epoch second, requests in it) for the optional rate limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Order Management traffic is intercepted *outside* Starlette's middleware so that
        # `send` is still the server's own callable (needed to drop a connection).
        if scope["type"] == "http" and scope["path"].startswith(OM_PREFIX):
            await self._gateway(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _gateway(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.sandbox
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        key = headers.get(IDEMPOTENCY_HEADER) or None
        at = state.now()
        status, fault, replayed, dropped = 500, None, False, False

        logged = False

        def log() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            kind = fault.kind if fault else None
            state.log_request(RequestRecord(method, path, key, status, at, kind, replayed, dropped))

        try:
            if not self.credentials.accepts(headers.get("authorization")):
                error = ApiError(401, "UNAUTHORIZED", "Invalid credentials.", headers=_CHALLENGE)
                response = _stored(error.status, error.body(), error.headers)
            elif self._rate_limited():
                response = _fault_response(Fault.rate_limited(limit=state.rate_limit_per_second or 0))
            elif (fault := state.faults.take(method, path)) and fault.kind in ("status", "rate_limit"):
                response = _fault_response(fault)
            else:
                response, replayed = await self._execute(scope, receive, key)
                if fault and fault.kind == "delay":
                    await asyncio.sleep(fault.seconds)
                if fault and fault.kind == "lost_response":
                    status, dropped = response.status, True
                    log()
                    await _drop_connection(send)
                    return
            status = response.status
        except BaseException:
            log()
            raise
        # Logged before the answer leaves, so a client that got it also finds it in the log.
        log()
        await _send_stored(send, response)

    def _rate_limited(self) -> bool:
        limit = self.sandbox.rate_limit_per_second
        if limit is None:
            return False
        second = int(self.sandbox.now().timestamp())
        count = self._window[1] + 1 if self._window[0] == second else 1
        self._window = (second, count)
        return count > limit

    async def _execute(self, scope: Scope, receive: Receive, key: str | None) -> tuple[StoredResponse, bool]:
        """Run the route, or replay the first response to this idempotency key."""
        if key is None or scope["method"] not in WRITE_METHODS:
            return await self._run(scope, receive), False
        store, now = self.sandbox.idempotency, self.sandbox.now()
        scoped: ScopedKey = (scope["method"], scope["path"], key)
        if (first := store.lookup(scoped, now)) is not None:
            return first, True
        if not store.begin(scoped):
            message = "A request with this Klarna-Idempotency-Key is still being processed."
            return _stored(409, error_body("CONFLICT", message)), False
        response = None
        try:
            response = await self._run(scope, receive)
        finally:
            store.finish(scoped, now, response if response and remembered(response.status) else None)
        return response, False

    async def _run(self, scope: Scope, receive: Receive) -> StoredResponse:
        """Call the Starlette app, collecting its response instead of sending it."""
        start: Message = {}
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await Starlette.__call__(self, scope, receive, collect)
        return StoredResponse(start.get("status", 500), tuple(start.get("headers", ())), b"".join(chunks))


# --- helpers -----------------------------------------------------------------------------

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Klarna Order Management sandbox"'}


def _stored(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> StoredResponse:
    response = JSONResponse(body, status_code=status, headers=headers)
    return StoredResponse(status, tuple(response.raw_headers), bytes(response.body))


def _fault_response(fault: Fault) -> StoredResponse:
    if fault.kind == "rate_limit":
        headers = {
            "X-Ratelimit-Limit": str(fault.limit),
            "X-Ratelimit-Remaining": "0",
            "X-Ratelimit-Reset": str(fault.reset),
        }
        return _stored(429, error_body("TOO_MANY_REQUESTS", fault.message or "Rate limit exceeded."), headers)
    message = fault.message or "Sandbox fault injected: the service is not available."
    return _stored(fault.status, error_body(fault.code(), message))


async def _send_stored(send: Send, response: StoredResponse) -> None:
    await send({"type": "http.response.start", "status": response.status, "headers": list(response.headers)})
    await send({"type": "http.response.body", "body": response.body})


async def _drop_connection(send: Send) -> None:
    """Close the client's connection without a response, like a crash after committing."""
    # uvicorn's `send` is a bound method of its per-request cycle, which holds the transport.
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if isinstance(transport, asyncio.Transport):
        transport.abort()  # no flush: not one byte of the response goes out
        for _ in range(100):  # let uvicorn notice, so it does not try to answer 500 itself
            if getattr(cycle, "disconnected", True):
                break
            await asyncio.sleep(0)
        return
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return JSONResponse(error_body("METHOD_NOT_ALLOWED", "Method not allowed."), status_code=405)
    return JSONResponse(error_body("NOT_FOUND", "Resource not found."), status_code=exc.status_code)
