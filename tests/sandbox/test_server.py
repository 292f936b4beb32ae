"""The sandbox behind a real uvicorn server on 127.0.0.1: what a client sees on the wire."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from adapters.klarna.sandbox import Fault, SandboxApp, SandboxState
from adapters.klarna.sandbox.server import banner, serve_in_thread

from .conftest import AUTH, OM, FakeClock, assert_error, create_order

CAPTURE = {"captured_amount": 1000}
KEY = {"Klarna-Idempotency-Key": "capture-parcel-1"}


@pytest.fixture
def base_url(app: SandboxApp) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=5) as client:
        yield client


async def test_lost_response_drops_the_connection_after_capturing_once(
    http: httpx.AsyncClient, state: SandboxState, base_url: str
) -> None:
    order_id = await create_order(http)
    state.faults.add(Fault.lost_response(method="POST", path="/captures$"))

    with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
        await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY)

    order = (await http.get(f"{OM}/{order_id}")).json()
    assert len(order["captures"]) == 1 and order["captured_amount"] == 1000

    retried = await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY)
    assert retried.status_code == 201
    assert retried.headers["Capture-Id"] == order["captures"][0]["capture_id"]
    assert (
        retried.headers["Location"] == f"{base_url}{OM}/{order_id}/captures/{retried.headers['Capture-Id']}"
    )
    assert len((await http.get(f"{OM}/{order_id}/captures")).json()) == 1
    log = [(r.method, r.status, r.dropped, r.replayed) for r in state.request_log()]
    assert log[-4:] == [("POST", 201, True, False), ("GET", 200, False, False), ("POST", 201, False, True),
                        ("GET", 200, False, False)]  # fmt: skip


async def test_idempotency_replay_then_expiry_after_24_hours(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    order_id = await create_order(http)
    url = f"{OM}/{order_id}/captures"

    first = await http.post(url, json=CAPTURE, headers=KEY)
    replay = await http.post(url, json=CAPTURE, headers=KEY)
    clock.advance(hours=24)
    expired = await http.post(url, json=CAPTURE, headers=KEY)

    assert first.status_code == replay.status_code == expired.status_code == 201
    assert replay.headers["Capture-Id"] == first.headers["Capture-Id"]
    assert expired.headers["Capture-Id"] != first.headers["Capture-Id"]
    assert len((await http.get(url)).json()) == 2


async def test_error_codes_on_the_wire(http: httpx.AsyncClient, base_url: str) -> None:
    order_id = await create_order(http, 1000)
    async with httpx.AsyncClient(base_url=base_url) as anonymous:
        unauthorized = await anonymous.get(f"{OM}/{order_id}")
    missing = await http.get(f"{OM}/no-such-order")
    too_much = await http.post(f"{OM}/{order_id}/captures", json={"captured_amount": 1001})
    bad = await http.post(f"{OM}/{order_id}/captures", json={"captured_amount": 1.5})

    assert_error(unauthorized, 401, "UNAUTHORIZED", "Invalid credentials.")
    assert_error(missing, 404, "NO_SUCH_ORDER", "Order no-such-order not found.")
    assert_error(
        too_much,
        403,
        "CAPTURE_NOT_ALLOWED",
        "Captured amount is higher than the remaining authorized amount. Capture not possible.",
    )
    assert_error(bad, 400, "BAD_VALUE", "Bad value: captured_amount")


async def test_rate_limit_and_unavailable_faults_on_the_wire(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    order_id = await create_order(http)
    state.faults.add(Fault.rate_limited(limit=50, reset=1))
    state.faults.add(Fault.http_error(503))

    limited = await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY)
    unavailable = await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY)
    ok = await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY)

    assert_error(limited, 429, "TOO_MANY_REQUESTS")
    assert limited.headers["x-ratelimit-limit"] == "50"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"] == "1"
    assert_error(unavailable, 503, "TEMPORARILY_UNAVAILABLE")
    assert ok.status_code == 201
    assert len((await http.get(f"{OM}/{order_id}/captures")).json()) == 1


async def test_delay_fault_times_the_client_out_but_the_capture_happens(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    order_id = await create_order(http)
    state.faults.add(Fault.delayed(0.5, method="POST"))

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY, timeout=0.1)
    assert time.monotonic() - started < 0.5

    retried = await http.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=KEY)
    captures = (await http.get(f"{OM}/{order_id}/captures")).json()
    assert [c["capture_id"] for c in captures] == [retried.headers["Capture-Id"]]


async def test_delay_fault_answers_after_the_delay(http: httpx.AsyncClient, state: SandboxState) -> None:
    order_id = await create_order(http)
    state.faults.add(Fault.delayed(0.3))

    started = time.monotonic()
    response = await http.get(f"{OM}/{order_id}")

    assert response.status_code == 200 and time.monotonic() - started >= 0.3


def test_banner_names_url_and_credentials() -> None:
    from adapters.klarna.sandbox import DEMO_API_KEY, DEMO_CREDENTIALS, DEMO_PASSWORD

    text = "\n".join(banner("http://127.0.0.1:8765", DEMO_CREDENTIALS))
    assert "http://127.0.0.1:8765" in text and DEMO_API_KEY in text and DEMO_PASSWORD in text


def test_keep_alive_answers_do_not_wait_for_nagle() -> None:
    """Accepted connections have TCP_NODELAY: 20 keep-alive requests take nowhere near 20 x 40 ms."""
    import socket

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send

    options: list[int] = []

    async def answer(request: Request) -> Response:
        await request.body()
        return JSONResponse({"ok": True})

    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn's `send` is bound to its request cycle, which holds the transport.
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            options.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) if sock else -1)
        await inner(scope, receive, send)

    inner = Starlette(routes=[Route("/", answer, methods=["POST"])])
    with serve_in_thread(probe) as url, httpx.Client() as client:
        client.post(url, json={"warm": 1})
        started = time.perf_counter()
        for n in range(20):
            assert client.post(url, json={"n": n}).status_code == 200
        elapsed = time.perf_counter() - started
    assert options and all(option == 1 for option in options), options
    assert elapsed < 20 * 0.040, f"20 keep-alive requests took {elapsed:.3f}s"
