"""Idempotency keys, injected faults, rate limits and the request log (in-process)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.klarna.sandbox import Fault, SandboxState
from adapters.klarna.sandbox.idempotency import IdempotencyStore, StoredResponse

from .conftest import OM, FakeClock, assert_error, create_order

CAPTURE = {"captured_amount": 1000}


def key(value: str) -> dict[str, str]:
    return {"Klarna-Idempotency-Key": value}


async def captures(client: httpx.AsyncClient, order_id: str) -> list[str]:
    return [c["capture_id"] for c in (await client.get(f"{OM}/{order_id}/captures")).json()]


# --- idempotency -------------------------------------------------------------------------


async def test_same_key_replays_the_first_response_and_captures_once(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    url = f"{OM}/{order_id}/captures"

    first = await client.post(url, json=CAPTURE, headers=key("k-1"))
    again = await client.post(url, json={"captured_amount": 5000}, headers=key("k-1"))  # body is disregarded

    assert first.status_code == again.status_code == 201
    assert again.headers["Capture-Id"] == first.headers["Capture-Id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert await captures(client, order_id) == [first.headers["Capture-Id"]]


async def test_other_key_or_no_key_executes_again(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    url = f"{OM}/{order_id}/captures"

    await client.post(url, json=CAPTURE, headers=key("k-1"))
    await client.post(url, json=CAPTURE, headers=key("k-2"))
    await client.post(url, json=CAPTURE)
    await client.post(url, json=CAPTURE)

    assert len(await captures(client, order_id)) == 4


async def test_keys_are_scoped_per_order_and_endpoint(client: httpx.AsyncClient) -> None:
    one, two = await create_order(client), await create_order(client)

    a = await client.post(f"{OM}/{one}/captures", json=CAPTURE, headers=key("shared"))
    b = await client.post(f"{OM}/{two}/captures", json=CAPTURE, headers=key("shared"))
    refund = await client.post(f"{OM}/{one}/refunds", json={"refunded_amount": 1000}, headers=key("shared"))

    assert a.headers["Capture-Id"] != b.headers["Capture-Id"]
    assert refund.status_code == 201


async def test_key_is_forgotten_after_24_hours(client: httpx.AsyncClient, clock: FakeClock) -> None:
    order_id = await create_order(client)
    url = f"{OM}/{order_id}/captures"
    first = await client.post(url, json=CAPTURE, headers=key("k-1"))

    clock.advance(hours=23, minutes=59, seconds=59)
    within = await client.post(url, json=CAPTURE, headers=key("k-1"))
    clock.advance(seconds=1)
    after = await client.post(url, json=CAPTURE, headers=key("k-1"))
    clock.advance(hours=1)
    replay_of_the_second = await client.post(url, json=CAPTURE, headers=key("k-1"))

    assert within.headers["Capture-Id"] == first.headers["Capture-Id"]
    assert after.status_code == 201 and after.headers["Capture-Id"] != first.headers["Capture-Id"]
    assert replay_of_the_second.headers["Capture-Id"] == after.headers["Capture-Id"]
    assert len(await captures(client, order_id)) == 2


async def test_refusals_are_remembered_but_validation_errors_are_not(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client, 1000)
    url = f"{OM}/{order_id}/captures"

    invalid = await client.post(url, json={"captured_amount": "1000"}, headers=key("k-400"))
    fixed = await client.post(url, json=CAPTURE, headers=key("k-400"))
    too_much = await client.post(url, json={"captured_amount": 1}, headers=key("k-400-b"))
    retried = await client.post(url, json={"captured_amount": 1}, headers=key("k-400-b"))

    assert invalid.status_code == 400 and fixed.status_code == 201
    assert_error(too_much, 403, "CAPTURE_NOT_ALLOWED")
    assert retried.json() == too_much.json()  # same correlation id: a replay, not a new refusal


async def test_replay_and_key_show_in_the_request_log(client: httpx.AsyncClient, state: SandboxState) -> None:
    order_id = await create_order(client)
    await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))
    await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))
    await client.get(f"{OM}/{order_id}", headers=key("ignored-on-get"))

    log = (await client.get("/_sandbox/requests")).json()

    assert [(r["method"], r["idempotency_key"], r["status"], r["replayed"]) for r in log] == [
        ("POST", "k-1", 201, False),
        ("POST", "k-1", 201, True),
        ("GET", "ignored-on-get", 200, False),
    ]
    assert log[0]["path"] == f"{OM}/{order_id}/captures"
    assert (await client.delete("/_sandbox/requests")).status_code == 204
    assert state.request_log() == []


def test_in_flight_key_is_refused_until_finished() -> None:
    store, now = IdempotencyStore(), datetime(2026, 1, 1, tzinfo=UTC)
    scoped = ("POST", "/x", "k")
    answer = StoredResponse(201, (), b"")

    assert store.begin(scoped) and not store.begin(scoped)
    store.finish(scoped, now, answer)
    assert store.lookup(scoped, now + timedelta(hours=1)) == answer
    assert store.lookup(scoped, now + timedelta(hours=24)) is None


# --- faults ------------------------------------------------------------------------------


async def test_503_fault_fails_before_applying(client: httpx.AsyncClient, state: SandboxState) -> None:
    order_id = await create_order(client)
    state.faults.add(Fault.http_error(503, method="POST", path=r"/captures$"))

    failed = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))
    retried = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))

    assert_error(failed, 503, "TEMPORARILY_UNAVAILABLE")
    assert retried.status_code == 201
    assert await captures(client, order_id) == [retried.headers["Capture-Id"]]
    assert [(r.status, r.fault) for r in state.request_log()][:2] == [(503, "status"), (201, None)]


async def test_fault_after_lets_matching_requests_through_first(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    order_id = await create_order(client)
    state.faults.add(Fault.http_error(403, method="POST", path=r"/captures$", after=1))

    first = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))
    second = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-2"))

    assert first.status_code == 201 and second.status_code == 403
    assert state.faults.pending() == []


async def test_500_fault_with_custom_body(client: httpx.AsyncClient, state: SandboxState) -> None:
    state.faults.add(Fault.http_error(500))
    state.faults.add(Fault.http_error(500, error_code="UNEXPECTED_ERROR", message="Boom."))

    assert_error(await client.get(f"{OM}/x"), 500, "INTERNAL_SERVER_ERROR")
    assert_error(await client.get(f"{OM}/x"), 500, "UNEXPECTED_ERROR", "Boom.")
    assert_error(await client.get(f"{OM}/x"), 404, "NO_SUCH_ORDER")


async def test_rate_limit_fault_headers(client: httpx.AsyncClient, state: SandboxState) -> None:
    state.faults.add(Fault.rate_limited(limit=50, reset=2))

    response = await client.get(f"{OM}/x")

    assert_error(response, 429, "TOO_MANY_REQUESTS", "Rate limit exceeded.")
    assert response.headers["X-Ratelimit-Limit"] == "50"
    assert response.headers["X-Ratelimit-Remaining"] == "0"
    assert response.headers["X-Ratelimit-Reset"] == "2"


async def test_faults_match_method_and_path_and_are_consumed_once(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    order_id = await create_order(client)
    state.faults.add(Fault.http_error(503, method="POST", path="/refunds"), count=2)

    assert (await client.get(f"{OM}/{order_id}")).status_code == 200
    assert (await client.post(f"{OM}/{order_id}/captures", json=CAPTURE)).status_code == 201
    for _ in range(2):
        assert (await client.post(f"{OM}/{order_id}/refunds", json={"refunded_amount": 1})).status_code == 503
    assert (await client.post(f"{OM}/{order_id}/refunds", json={"refunded_amount": 1})).status_code == 201
    assert state.faults.pending() == []


async def test_delay_fault_answers_late(client: httpx.AsyncClient, state: SandboxState) -> None:
    order_id = await create_order(client)
    state.faults.add(Fault.delayed(0.2))

    started = time.monotonic()
    response = await client.get(f"{OM}/{order_id}")

    assert response.status_code == 200 and time.monotonic() - started >= 0.2


async def test_lost_response_in_process_raises_the_transport_error(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    order_id = await create_order(client)
    state.faults.add(Fault.lost_response(method="POST"))

    with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
        await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))
    retried = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE, headers=key("k-1"))

    assert await captures(client, order_id) == [retried.headers["Capture-Id"]]
    first, second = state.request_log()[:2]
    assert (first.status, first.dropped, first.fault) == (201, True, "lost_response")
    assert (second.replayed, second.dropped) == (True, False)


async def test_configured_rate_limit(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    state.rate_limit_per_second = 2
    statuses = [(await client.get(f"{OM}/x")).status_code for _ in range(3)]
    clock.advance(seconds=1)
    statuses.append((await client.get(f"{OM}/x")).status_code)

    assert statuses == [404, 404, 429, 404]


async def test_fault_admin_api(client: httpx.AsyncClient, state: SandboxState) -> None:
    queued = await client.post(
        "/_sandbox/faults",
        json=[
            {"kind": "status", "status": 502, "path": "/captures", "count": 2},
            {"kind": "delay", "seconds": 0.01},
            {"kind": "lost_response", "method": "POST"},
        ],
    )
    one = await client.post("/_sandbox/faults", json={"kind": "rate_limit", "limit": 10})

    assert queued.status_code == 201
    assert [f["kind"] for f in one.json()] == ["status", "status", "delay", "lost_response", "rate_limit"]
    assert one.json()[0] == {"kind": "status", "path": "/captures", "status": 502}
    assert one.json()[2:] == [
        {"kind": "delay", "seconds": 0.01},
        {"kind": "lost_response", "method": "POST"},
        {"kind": "rate_limit", "limit": 10, "reset": 1},
    ]
    assert [f.kind for f in state.faults.pending()] == [f["kind"] for f in one.json()]
    assert (await client.get("/_sandbox/faults")).json() == one.json()
    assert (await client.delete("/_sandbox/faults")).status_code == 204
    assert state.faults.pending() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "meteor"}, "Bad value: kind"),
        ({"status": 503}, "Bad value: kind"),
        ({"kind": "status", "status": 200}, "Bad value: status"),
        ({"kind": "status", "path": "("}, "Bad value: path"),
        ({"kind": "delay", "seconds": -1}, "Bad value: seconds"),
        ({"kind": "delay", "count": 0}, "Bad value: count"),
        ({"kind": "delay", "colour": "red"}, "Bad value: colour"),
        ([{"kind": "delay"}, {"kind": "status", "status": "503"}], "Bad value: [1].status"),
        ("status", "Bad value: body"),
    ],
)
async def test_fault_admin_api_rejects_bad_faults(
    client: httpx.AsyncClient, body: object, message: str
) -> None:
    assert_error(await client.post("/_sandbox/faults", json=body), 400, "BAD_VALUE", message)
