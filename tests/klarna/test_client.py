"""OrderManagementClient against a scripted, stateful Klarna stand-in (httpx.MockTransport)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import plugin
from adapters.klarna import errors
from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.models import CaptureRequest, OrderLine, RefundRequest, ShippingInfo
from tests.klarna.contract import order_example

API_KEY = "klarna_test_api_ZmFrZS1zZWNyZXQtdmFsdWU"
USERNAME = "0b1d9815-165e-42e2-8867-35bc03789e00"
BASE = "https://api.playground.klarna.com"
ORDER = "f3392f8b-6116-4073-ab96-e330819e2c07"
ORDERS = f"/ordermanagement/v1/orders/{ORDER}"
KEY = uuid.UUID("9f0c1a52-3b57-5d2e-8d3f-0a6b2c1d4e5f")
CORRELATION = "66782175-ae05-44fc-9eb3-eeceadbad271"

Step = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeKlarna:
    """Order Management stand-in: records every request and answers from a script.

    Each request takes the next scripted step (a response, or a function of the request);
    once the script is used up it behaves like Klarna, creating each capture or refund once
    per idempotency key and answering repeats of a key with the first result.
    """

    def __init__(self, *steps: Step) -> None:
        self.steps: deque[Step] = deque(steps)
        self.requests: list[httpx.Request] = []
        self.created: dict[str, str] = {}  # idempotency key -> capture/refund id
        self.sleeps: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.steps:
            step = self.steps.popleft()
            return step if isinstance(step, httpx.Response) else step(request)
        return self.behave(request)

    def behave(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=order_example())
        kind = request.url.path.rsplit("/", 1)[-1]
        if kind not in ("captures", "refunds"):
            return httpx.Response(204)
        key = request.headers["Klarna-Idempotency-Key"]
        new_id = self.created.setdefault(key, f"{kind[:-1]}-{len(self.created) + 1}")
        header = "Capture-Id" if kind == "captures" else "Refund-Id"
        return httpx.Response(201, headers={header: new_id, "Location": f"{request.url}/{new_id}"})

    def applies_then_times_out(self, request: httpx.Request) -> httpx.Response:
        """The provider acts on the request, but the answer never arrives."""
        self.behave(request)
        raise httpx.ReadTimeout("timed out", request=request)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) if request.content else None for request in self.requests]


def error(status: int, code: str, *messages: str, **headers: str) -> httpx.Response:
    body = {"error_code": code, "error_messages": list(messages), "correlation_id": CORRELATION}
    return httpx.Response(status, json=body, headers=headers)


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


@contextlib.asynccontextmanager
async def connect(
    fake: FakeKlarna,
    *,
    username: str | None = None,
    max_attempts: int = 4,
    jitter: float = 1.0,
    timeout: float | httpx.Timeout = 12.0,
) -> AsyncIterator[OrderManagementClient]:
    retry = RetryPolicy(max_attempts=max_attempts, sleep=fake.sleep, random=lambda: jitter)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        yield OrderManagementClient(
            base_url=BASE, api_key=API_KEY, username=username, http_client=http, retry=retry, timeout=timeout
        )


CAPTURE = CaptureRequest(
    captured_amount=4500,
    reference="10001-P1",
    order_lines=[
        OrderLine(
            reference="SKU-1",
            name="Secret Widget",
            type="physical",
            quantity=1,
            unit_price=4500,
            tax_rate=2500,
            total_amount=4500,
            total_tax_amount=900,
        )
    ],
)


# --- headers -------------------------------------------------------------------------------


async def test_api_key_alone_is_sent_verbatim_as_basic_credentials() -> None:
    fake = FakeKlarna()
    async with connect(fake) as client:
        await client.get_order(ORDER)
    assert fake.requests[0].headers["Authorization"] == f"Basic {API_KEY}"


async def test_username_and_key_use_standard_basic_auth() -> None:
    fake = FakeKlarna()
    async with connect(fake, username=USERNAME) as client:
        await client.get_order(ORDER)
    token = base64.b64encode(f"{USERNAME}:{API_KEY}".encode()).decode()
    assert fake.requests[0].headers["Authorization"] == f"Basic {token}"


async def test_every_request_identifies_kom_in_the_user_agent() -> None:
    fake = FakeKlarna()
    async with connect(fake) as client:
        await client.get_order(ORDER)
        await client.cancel(ORDER, KEY)
    for request in fake.requests:
        agent = request.headers["User-Agent"]
        assert agent.startswith(f"KOM/{plugin.__version__} (+https://github.com/kom) Language/Python_3.")
        assert agent.endswith(f" httpx/{httpx.__version__}")


async def test_capture_sends_json_body_idempotency_key_and_timeout() -> None:
    fake = FakeKlarna()
    async with connect(fake) as client:
        capture_id = await client.capture(ORDER, CAPTURE, KEY)

    (request,) = fake.requests
    assert (request.method, request.url.path) == ("POST", f"{ORDERS}/captures")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Klarna-Idempotency-Key"] == str(KEY)
    assert fake.bodies() == [CAPTURE.model_dump(mode="json", exclude_none=True)]
    assert "null" not in request.content.decode()
    assert request.extensions["timeout"] == httpx.Timeout(12.0).as_dict()
    assert capture_id == "capture-1"


async def test_get_order_is_a_plain_get() -> None:
    fake = FakeKlarna()
    async with connect(fake) as client:
        order = await client.get_order(ORDER)
    (request,) = fake.requests
    assert (request.method, request.url.path, request.content) == ("GET", ORDERS, b"")
    assert "Klarna-Idempotency-Key" not in request.headers
    assert (order.order_id, order.status, len(order.captures)) == (ORDER, "PART_CAPTURED", 1)


async def test_order_id_cannot_escape_its_path_segment() -> None:
    fake = FakeKlarna()
    async with connect(fake) as client:
        await client.cancel("../../refunds?x=1", KEY)
    assert fake.requests[0].url.raw_path == b"/ordermanagement/v1/orders/..%2F..%2Frefunds%3Fx%3D1/cancel"


@pytest.mark.parametrize(
    ("operation", "suffix"),
    [
        ("cancel", "/cancel"),
        ("release_remaining_authorization", "/release-remaining-authorization"),
        ("extend_authorization_time", "/extend-authorization-time"),
    ],
)
async def test_lifecycle_writes_post_without_a_body(operation: str, suffix: str) -> None:
    fake = FakeKlarna()
    async with connect(fake) as client:
        await getattr(client, operation)(ORDER, KEY)
    (request,) = fake.requests
    assert (request.method, request.url.path, request.content) == ("POST", ORDERS + suffix, b"")
    assert request.headers["Klarna-Idempotency-Key"] == str(KEY)
    assert request.headers["Content-Type"] == "application/json"


async def test_add_shipping_info_posts_to_the_capture() -> None:
    fake = FakeKlarna()
    info = ShippingInfo(shipping_company="DHL DE", shipping_method="Home", tracking_number="0034")
    async with connect(fake) as client:
        await client.add_shipping_info(ORDER, "cap/1", [info], KEY)
    assert fake.requests[0].url.raw_path == f"{ORDERS}/captures/cap%2F1/shipping-info".encode()
    assert fake.bodies() == [
        {
            "shipping_info": [
                {"shipping_company": "DHL DE", "shipping_method": "Home", "tracking_number": "0034"}
            ]
        }
    ]


# --- created ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Capture-Id": "c-1", "Location": f"{BASE}{ORDERS}/captures/other"}, "c-1"),
        ({"Location": f"{BASE}{ORDERS}/captures/4ba29b50-be7b"}, "4ba29b50-be7b"),
        ({"Location": f"{ORDERS}/captures/c%2092/"}, "c 92"),
    ],
)
async def test_capture_id_from_header_else_location(headers: dict[str, str], expected: str) -> None:
    async with connect(FakeKlarna(httpx.Response(201, headers=headers))) as client:
        assert await client.capture(ORDER, CAPTURE, KEY) == expected


async def test_refund_id_from_header_else_location() -> None:
    fake = FakeKlarna(
        httpx.Response(201, headers={"Refund-Id": "r-1"}),
        httpx.Response(201, headers={"Location": f"{BASE}{ORDERS}/refunds/r-2"}),
    )
    request = RefundRequest(refunded_amount=100)
    async with connect(fake) as client:
        assert [await client.refund(ORDER, request, KEY), await client.refund(ORDER, request, KEY)] == [
            "r-1",
            "r-2",
        ]
    assert fake.requests[0].url.path == f"{ORDERS}/refunds"


async def test_created_without_any_id_is_an_unexpected_response() -> None:
    async with connect(FakeKlarna(httpx.Response(201))) as client:
        with pytest.raises(errors.UnexpectedResponse, match="without a Capture-Id or Location") as caught:
            await client.capture(ORDER, CAPTURE, KEY)
    assert isinstance(caught.value, errors.OutcomeUnknown)  # the capture may well exist: read the order


async def test_unreadable_order_is_an_unexpected_response() -> None:
    fake = FakeKlarna(httpx.Response(200, json={"order_id": ORDER, "captures": [{"captured_amount": 1}]}))
    async with connect(fake) as client:
        with pytest.raises(errors.UnexpectedResponse, match="status") as caught:
            await client.get_order(ORDER)
    assert caught.value.__cause__ is None


# --- retries -------------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    top = RetryPolicy(random=lambda: 1.0)
    assert [top.backoff(retry) for retry in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert RetryPolicy(random=lambda: 0.25).backoff(3) == 0.5
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


async def test_503_503_201_succeeds_after_backing_off_with_the_same_key() -> None:
    fake = FakeKlarna(error(503, "TEMPORARILY_UNAVAILABLE"), error(503, "TEMPORARILY_UNAVAILABLE"))
    async with connect(fake, jitter=0.5) as client:
        assert await client.capture(ORDER, CAPTURE, KEY) == "capture-1"
    assert fake.sleeps == [0.25, 0.5]
    assert [r.headers["Klarna-Idempotency-Key"] for r in fake.requests] == [str(KEY)] * 3
    assert fake.bodies() == [CAPTURE.model_dump(mode="json", exclude_none=True)] * 3


async def test_a_lost_answer_is_retried_with_the_same_key_and_captures_once() -> None:
    fake = FakeKlarna()
    fake.steps.append(fake.applies_then_times_out)
    async with connect(fake) as client:
        capture_id = await client.capture(ORDER, CAPTURE, KEY)
    assert len(fake.requests) == 2
    assert fake.created == {str(KEY): capture_id}  # one capture, and we learned its id


async def test_reads_are_retried_too() -> None:
    fake = FakeKlarna(read_timeout, httpx.Response(502, text="<html>Bad Gateway</html>"))
    async with connect(fake) as client:
        order = await client.get_order(ORDER)
    assert order.order_id == ORDER
    assert len(fake.sleeps) == 2


@pytest.mark.parametrize(("reset", "expected"), [("2", 2.0), ("0.5", 0.5), ("60", 8.0)])
async def test_429_waits_as_long_as_x_ratelimit_reset_says_capped(reset: str, expected: float) -> None:
    fake = FakeKlarna(error(429, "TOO_MANY_REQUESTS", **{"X-Ratelimit-Reset": reset}))
    async with connect(fake) as client:
        await client.capture(ORDER, CAPTURE, KEY)
    assert fake.sleeps == [expected]


@pytest.mark.parametrize("reset", [None, "soon", "-1", "nan"])
async def test_429_without_a_usable_reset_backs_off(reset: str | None) -> None:
    headers = {} if reset is None else {"X-Ratelimit-Reset": reset}
    fake = FakeKlarna(error(429, "TOO_MANY_REQUESTS", **headers))
    async with connect(fake) as client:
        await client.get_order(ORDER)
    assert fake.sleeps == [0.5]


async def test_429_on_every_attempt_is_rate_limited() -> None:
    fake = FakeKlarna(*[error(429, "TOO_MANY_REQUESTS", "Too many requests")] * 4)
    async with connect(fake) as client:
        with pytest.raises(errors.RateLimited) as caught:
            await client.refund(ORDER, RefundRequest(refunded_amount=1), KEY)
    assert (caught.value.status_code, caught.value.error_code, caught.value.attempts) == (
        429,
        "TOO_MANY_REQUESTS",
        4,
    )
    assert len(fake.requests) == 4 and len(fake.sleeps) == 3


async def test_429_after_a_5xx_is_an_unknown_outcome() -> None:
    # The 503 may have captured; a final 429 does not prove that nothing happened.
    fake = FakeKlarna(error(503, "TEMPORARILY_UNAVAILABLE"), *[error(429, "TOO_MANY_REQUESTS")] * 3)
    async with connect(fake) as client:
        with pytest.raises(errors.OutcomeUnknown, match="HTTP 429"):
            await client.capture(ORDER, CAPTURE, KEY)


async def test_connect_error_on_every_attempt_is_not_sent() -> None:
    fake = FakeKlarna(*[refuse_connection] * 4)
    async with connect(fake) as client:
        with pytest.raises(errors.NotSent) as caught:
            await client.capture(ORDER, CAPTURE, KEY)
    assert caught.value.attempts == 4 and len(fake.requests) == 4
    assert str(caught.value) == (
        f"capture for order {ORDER} was never sent to the provider (last: ConnectError, 4 attempts); "
        "nothing changed and it is safe to retry."
    )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_read_timeout_is_an_unknown_outcome() -> None:
    fake = FakeKlarna(refuse_connection, refuse_connection, read_timeout, refuse_connection)
    async with connect(fake) as client:
        with pytest.raises(errors.OutcomeUnknown) as caught:
            await client.capture(ORDER, CAPTURE, KEY)
    assert "same idempotency key" in str(caught.value)
    assert not isinstance(caught.value, errors.UnexpectedResponse)


async def test_non_json_500_on_every_attempt_is_an_unknown_outcome() -> None:
    fake = FakeKlarna(*[httpx.Response(500, text="<html>Internal Server Error</html>")] * 2)
    async with connect(fake, max_attempts=2) as client:
        with pytest.raises(errors.OutcomeUnknown, match=r"last: HTTP 500, 2 attempts"):
            await client.cancel(ORDER, KEY)


# --- rejections ----------------------------------------------------------------------------


async def test_403_capture_not_allowed_is_not_retried() -> None:
    message = "Captured amount is higher than the remaining authorized amount. Capture not possible."
    fake = FakeKlarna(error(403, "CAPTURE_NOT_ALLOWED", message))
    async with connect(fake) as client:
        with pytest.raises(errors.NotAllowed) as caught:
            await client.capture(ORDER, CAPTURE, KEY)
    rejected = caught.value
    assert (rejected.status_code, rejected.error_code, rejected.correlation_id) == (
        403,
        "CAPTURE_NOT_ALLOWED",
        CORRELATION,
    )
    assert rejected.error_messages == (message,)
    assert len(fake.requests) == 1 and fake.sleeps == []
    assert str(rejected) == (
        f"The provider rejected capture for order {ORDER} with HTTP 403 CAPTURE_NOT_ALLOWED "
        f"(correlation id {CORRELATION}): {message}"
    )


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (401, "UNAUTHORIZED", errors.AuthenticationFailed),
        (404, "NO_SUCH_ORDER", errors.NotFound),
        (409, "CONFLICT", errors.Rejected),
        (422, "UNPROCESSABLE_ENTITY", errors.Rejected),
    ],
)
async def test_4xx_maps_to_its_rejection(status: int, code: str, error_class: type[errors.Rejected]) -> None:
    fake = FakeKlarna(error(status, code, "Nope."))
    async with connect(fake) as client:
        with pytest.raises(error_class) as caught:
            await client.get_order(ORDER)
    assert type(caught.value) is error_class
    assert (caught.value.status_code, caught.value.error_code) == (status, code)
    assert len(fake.requests) == 1


async def test_non_json_4xx_body_is_tolerated() -> None:
    fake = FakeKlarna(httpx.Response(400, text="Bad Request"))
    async with connect(fake) as client:
        with pytest.raises(errors.Rejected) as caught:
            await client.refund(ORDER, RefundRequest(refunded_amount=1), KEY)
    assert (caught.value.error_code, caught.value.error_messages, caught.value.correlation_id) == (
        None,
        (),
        None,
    )
    assert str(caught.value) == f"The provider rejected refund for order {ORDER} with HTTP 400."


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("username", [None, USERNAME])
async def test_credentials_and_bodies_stay_out_of_errors_and_logs(
    username: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    token = base64.b64encode(f"{USERNAME}:{API_KEY}".encode()).decode()
    sent = API_KEY if username is None else token
    echo = error(401, "UNAUTHORIZED", f"Bad credentials: Basic {sent}")  # a careless server echoes them
    fake = FakeKlarna(
        error(503, "TEMPORARILY_UNAVAILABLE"),
        read_timeout,
        error(429, "TOO_MANY_REQUESTS"),
        echo,
        refuse_connection,
        *[error(502, "TEMPORARILY_UNAVAILABLE")] * 3,
    )
    caplog.set_level(logging.DEBUG, logger="kom.klarna")
    async with connect(fake, username=username) as client:
        with pytest.raises(errors.AuthenticationFailed) as first:
            await client.capture(ORDER, CAPTURE, KEY)
        with pytest.raises(errors.OutcomeUnknown) as second:
            await client.capture(ORDER, CAPTURE, KEY)

    assert "[redacted]" in str(first.value)
    records = [r for r in caplog.records if r.name == "kom.klarna"]
    assert any(r.levelno == logging.INFO and "Retrying capture" in r.getMessage() for r in records)
    assert any(CORRELATION in r.getMessage() for r in records)
    texts = [str(first.value), str(second.value), repr(client)] + [
        f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in records
    ]
    for text in texts:
        for secret in (API_KEY, token, "Secret Widget", "Authorization"):
            assert secret not in text


async def test_invalid_credentials_are_refused_without_echoing_them() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ValueError, match="API key") as caught:
            OrderManagementClient(base_url=BASE, api_key=f"{API_KEY}\r\nX-Evil: 1", http_client=http)
        assert API_KEY not in str(caught.value)
        with pytest.raises(ValueError, match="username"):
            OrderManagementClient(base_url=BASE, api_key=API_KEY, username="a:b", http_client=http)
        with pytest.raises(ValueError, match="user info"):
            OrderManagementClient(
                base_url=f"https://u:{API_KEY}@api.klarna.com", api_key=API_KEY, http_client=http
            )
