"""Async client for the Order Management API, which Klarna and Kustom serve identically.

Every write carries a ``Klarna-Idempotency-Key``; retries re-send the same key, which is
the only reason retrying a write (capture, refund, ...) is safe: the provider executes a
key once and answers repeats with the first result (klarna-api.md §2.4).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import math
import platform
import random as _random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

import plugin
from adapters.klarna import errors
from adapters.klarna.hosts import check_base_url
from adapters.klarna.models import (
    RESPONSE,
    CaptureRequest,
    ErrorBody,
    Order,
    RefundRequest,
    ShippingInfo,
    ShippingInfoUpdate,
)
from adapters.klarna.pacing import TokenBucket

log = logging.getLogger("kom.klarna")

# Klarna SDKs use "Name/version" tokens so support can tell integrations apart (§2.3).
USER_AGENT = (
    f"KOM/{plugin.__version__} (+https://github.com/kom) "
    f"Language/Python_{platform.python_version()} httpx/{httpx.__version__}"
)
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

# Our own request is malformed: nothing was sent and retrying cannot help.
_BROKEN_REQUEST = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
# The connection was never established, so the provider cannot have seen the request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_REJECTIONS: dict[int, type[errors.Rejected]] = {
    401: errors.AuthenticationFailed,
    403: errors.NotAllowed,
    404: errors.NotFound,
}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, as Klarna recommends for 429s (§2.5).

    ``sleep`` and ``random`` are injectable so tests run instantly and deterministically.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    rate_limit_patience: float = 0.0
    """Seconds of 429 waits that do not use up attempts (a 429 was not executed): a burst
    queues behind the rate limit instead of failing. 0: every 429 counts as an attempt."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = _random.random

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy needs max_attempts >= 1 and non-negative delays.")

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1 = first): uniform in [0, base·2^(retry-1)], capped."""
        return self.random() * min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))


@dataclass(frozen=True)
class _Failure:
    """A retryable failed attempt."""

    description: str  # "HTTP 503", "ReadTimeout": safe to log, never contains secrets
    reached: bool  # may the provider have received (and acted on) the request?
    delay: float | None = None  # wait the provider asked for (X-Ratelimit-Reset)
    correlation_id: str | None = None
    limit: ErrorBody | None = None  # the body of a 429
    exc: httpx.TransportError | None = None


class OrderManagementClient:
    """Calls ``/ordermanagement/v1/orders/...`` with retries; raises ``errors.ProviderError``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        http_client: httpx.AsyncClient,
        username: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        pacer: TokenBucket | None = None,
    ) -> None:
        if not api_key or not (api_key.isascii() and api_key.isprintable()) or " " in api_key:
            raise ValueError("The API key must be non-empty printable ASCII without spaces.")
        if username is not None and (not username or ":" in username or not username.isprintable()):
            raise ValueError("The API username must be non-empty, printable and contain no colon.")
        self._base_url = check_base_url(base_url)
        self._http = http_client
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._pacer = pacer
        # klarna-api.md §2.2 (Klarna [D-AUTH], Kustom [K-AUTH]): an API key alone is sent
        # verbatim as "Authorization: Basic <API key>", not base64-encoded and with no
        # colon; with the username shown next to the key, it is standard Basic auth with
        # the key as password: "Basic base64(username:api_key)".
        if username is None:
            self._authorization = f"Basic {api_key}"
        else:
            token = base64.b64encode(f"{username}:{api_key}".encode()).decode("ascii")
            self._authorization = f"Basic {token}"
        self._secrets = tuple(s for s in (api_key, self._authorization.removeprefix("Basic ")) if s)

    def __repr__(self) -> str:
        return f"OrderManagementClient(base_url={self._base_url!r})"

    async def get_order(self, order_id: str) -> Order:
        response, attempts = await self._call("get order", order_id, "GET", "")
        try:
            return Order.model_validate_json(response.content, context=RESPONSE)
        except ValidationError as exc:
            # Not chained: a ValidationError quotes the offending input, which may be customer data.
            where = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors()[:3])
            raise errors.UnexpectedResponse(
                operation="get order",
                order_id=order_id,
                attempts=attempts,
                reason=f"the order did not have the expected shape at {where}",
            ) from None

    async def capture(self, order_id: str, request: CaptureRequest, idempotency_key: uuid.UUID) -> str:
        """Create a capture; returns its capture id."""
        response, attempts = await self._call(
            "capture", order_id, "POST", "/captures", body=request, idempotency_key=idempotency_key
        )
        return _created_id(response, "Capture-Id", operation="capture", order_id=order_id, attempts=attempts)

    async def add_shipping_info(
        self,
        order_id: str,
        capture_id: str,
        shipping_info: list[ShippingInfo],
        idempotency_key: uuid.UUID,
    ) -> None:
        await self._call(
            "add shipping info",
            order_id,
            "POST",
            f"/captures/{_segment(capture_id)}/shipping-info",
            body=ShippingInfoUpdate(shipping_info=shipping_info),
            idempotency_key=idempotency_key,
        )

    async def refund(self, order_id: str, request: RefundRequest, idempotency_key: uuid.UUID) -> str:
        """Create a refund; returns its refund id."""
        response, attempts = await self._call(
            "refund", order_id, "POST", "/refunds", body=request, idempotency_key=idempotency_key
        )
        return _created_id(response, "Refund-Id", operation="refund", order_id=order_id, attempts=attempts)

    async def cancel(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        await self._call("cancel", order_id, "POST", "/cancel", idempotency_key=idempotency_key)

    async def release_remaining_authorization(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        await self._call(
            "release remaining authorization",
            order_id,
            "POST",
            "/release-remaining-authorization",
            idempotency_key=idempotency_key,
        )

    async def extend_authorization_time(self, order_id: str, idempotency_key: uuid.UUID) -> None:
        await self._call(
            "extend authorization time",
            order_id,
            "POST",
            "/extend-authorization-time",
            idempotency_key=idempotency_key,
        )

    async def _call(
        self,
        operation: str,
        order_id: str,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        idempotency_key: uuid.UUID | None = None,
    ) -> tuple[httpx.Response, int]:
        """Send with retries; returns the 2xx response and the number of attempts it took."""
        url = f"{self._base_url}/ordermanagement/v1/orders/{_segment(order_id)}{path}"
        headers = {
            "Authorization": self._authorization,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if method != "GET":
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:  # every write method requires one
            headers["Klarna-Idempotency-Key"] = str(idempotency_key)
        content = (
            None if body is None else json.dumps(body.model_dump(mode="json", exclude_none=True)).encode()
        )
        policy = self._retry
        failures: list[_Failure] = []
        counted, patience = 0, policy.rate_limit_patience
        while True:
            attempt = len(failures) + 1
            log.debug("%s order=%s attempt=%d/%d", operation, order_id, attempt, policy.max_attempts)
            if self._pacer is not None:
                await self._pacer.take()
            result = await self._attempt(operation, order_id, attempt, method, url, headers, content)
            if isinstance(result, httpx.Response):
                return result, attempt
            failures.append(result)
            delay = result.delay if result.delay is not None else policy.backoff(counted + 1)
            if result.limit is not None and delay <= patience:
                patience -= delay  # refused unexecuted: waiting for the limit is not a failure
            else:
                counted += 1
                if counted >= policy.max_attempts:
                    break
            log.info(
                "Retrying %s for order %s: attempt %d/%d failed (%s, correlation_id=%s); waiting %.2fs",
                operation,
                order_id,
                attempt,
                policy.max_attempts,
                result.description,
                result.correlation_id,
                delay,
            )
            if result.limit is not None and self._pacer is not None:
                self._pacer.hold(delay)  # every call with these credentials waits, not just this one
            else:
                await policy.sleep(delay)
        raise self._exhausted(operation, order_id, failures)

    async def _attempt(
        self,
        operation: str,
        order_id: str,
        attempt: int,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
    ) -> httpx.Response | _Failure:
        """One try: the 2xx response, or a retryable failure. Raises for final answers."""
        try:
            response = await self._http.request(
                method, url, headers=headers, content=content, timeout=self._timeout
            )
        except _BROKEN_REQUEST as exc:
            raise errors.NotSent(
                operation=operation, order_id=order_id, attempts=attempt, reason=type(exc).__name__
            ) from exc
        except _NOT_SENT as exc:
            return _Failure(type(exc).__name__, reached=False, exc=exc)
        except httpx.TransportError as exc:  # read/write timeout, dropped connection, ...
            return _Failure(type(exc).__name__, reached=True, exc=exc)

        status = response.status_code
        body = None if response.is_success else _error_body(response)
        correlation_id = body.correlation_id if body else None
        log.debug(
            "%s order=%s attempt=%d status=%d correlation_id=%s",
            operation,
            order_id,
            attempt,
            status,
            correlation_id,
        )
        if body is None:
            return response
        if status == 429:  # refused before processing: the request did not take effect
            delay = _reset_delay(response, self._retry.max_delay)
            return _Failure("HTTP 429", reached=False, delay=delay, correlation_id=correlation_id, limit=body)
        if status >= 500:
            return _Failure(f"HTTP {status}", reached=True, correlation_id=correlation_id)
        if status >= 400:
            error_class = _REJECTIONS.get(status, errors.Rejected)
            raise self._rejected(error_class, operation, order_id, status, body, attempt)
        # 1xx/3xx: Klarna sends neither, and redirects are deliberately not followed.
        raise errors.UnexpectedResponse(
            operation=operation, order_id=order_id, attempts=attempt, reason=f"HTTP {status}"
        )

    def _exhausted(self, operation: str, order_id: str, failures: list[_Failure]) -> errors.ProviderError:
        """The error for a call whose every attempt failed retryably."""
        last, attempts = failures[-1], len(failures)
        reached = any(failure.reached for failure in failures)
        if last.limit is not None and not reached:
            return self._rejected(errors.RateLimited, operation, order_id, 429, last.limit, attempts)
        error_class = errors.OutcomeUnknown if reached else errors.NotSent
        error = error_class(
            operation=operation, order_id=order_id, attempts=attempts, reason=f"last: {last.description}"
        )
        error.__cause__ = last.exc
        return error

    def _rejected(
        self,
        error_class: type[errors.Rejected],
        operation: str,
        order_id: str,
        status: int,
        body: ErrorBody,
        attempts: int,
    ) -> errors.Rejected:
        return error_class(
            operation=operation,
            order_id=order_id,
            status_code=status,
            error_code=body.error_code,
            # The provider's text goes into logs and UIs: make sure it never echoes a credential.
            error_messages=tuple(self._scrub(message) for message in body.error_messages),
            correlation_id=body.correlation_id,
            attempts=attempts,
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def _segment(value: str) -> str:
    """One URL path segment: ids are quoted so they cannot change the path."""
    return quote(value, safe="")


def _error_body(response: httpx.Response) -> ErrorBody:
    """The error body if it is the documented JSON; an empty one otherwise (e.g. an HTML 502)."""
    try:
        return ErrorBody.model_validate_json(response.content, context=RESPONSE)
    except ValidationError:
        return ErrorBody()


def _reset_delay(response: httpx.Response, max_delay: float) -> float | None:
    """Seconds from ``X-Ratelimit-Reset``, else ``Retry-After`` (seconds or an HTTP date),
    capped; None to fall back to backoff."""
    for header in ("X-Ratelimit-Reset", "Retry-After"):
        value = response.headers.get(header, "").strip()
        seconds: float | None
        try:
            seconds = float(value)
        except ValueError:
            seconds = _seconds_until(value)
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return min(seconds, max_delay)
    return None


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _created_id(
    response: httpx.Response, header: str, *, operation: str, order_id: str, attempts: int
) -> str:
    """The new resource's id from ``Capture-Id``/``Refund-Id``, else the last segment of ``Location``."""
    created: str = response.headers.get(header, "").strip()
    if not created:
        path = urlsplit(response.headers.get("Location", "").strip()).path.rstrip("/")
        created = unquote(path.rsplit("/", 1)[-1]) if path else ""
    if not created:
        raise errors.UnexpectedResponse(
            operation=operation,
            order_id=order_id,
            attempts=attempts,
            reason=f"HTTP {response.status_code} without a {header} or Location header",
        )
    return created
