"""The Order Management endpoints over HTTP (in-process), on the article's two-parcel example."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.klarna.sandbox import SandboxState

from .conftest import OM, FakeClock, assert_error, create_order, line

A_LINES = [line("A12345", 3000, "T-shirt"), line("A98765", 7000, "Jeans")]
B_LINES = [line("B24680", 10000, "Sneakers")]
CAPTURE_A = {
    "captured_amount": 10000,
    "description": "Capture A, shipping part of the order",
    "reference": "parcel-A",
    "order_lines": A_LINES,
}
CAPTURE_B = {
    "captured_amount": 10000,
    "description": "Capture B, shipping the rest of the order",
    "order_lines": [line("B24680", 10000, "Sneakers")],
}
SNEAKERS_BACK = {
    "refunded_amount": 10000,
    "description": "Returning the sneakers",
    "order_lines": [line("B24680", 10000, "Sneakers")],
}


async def seeded_order(client: httpx.AsyncClient) -> tuple[str, str, str]:
    """An order of 20000 captured in parcels A and B; returns (order_id, capture A id, capture B id)."""
    order_id = await create_order(client, 20000, order_lines=A_LINES + B_LINES)
    a = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)
    b = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_B)
    assert a.status_code == b.status_code == 201
    return order_id, a.headers["Capture-Id"], b.headers["Capture-Id"]


async def order(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await client.get(f"{OM}/{order_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# --- order, captures, refunds ----------------------------------------------------------


async def test_new_order_is_authorized(client: httpx.AsyncClient, clock: FakeClock) -> None:
    order_id = await create_order(client, 20000)

    body = await order(client, order_id)

    assert body["status"] == "AUTHORIZED"
    assert (body["order_amount"], body["original_order_amount"], body["remaining_authorized_amount"]) == (
        20000,
        20000,
        20000,
    )
    assert (body["captured_amount"], body["refunded_amount"]) == (0, 0)
    assert body["created_at"] == "2026-03-02T12:00:00.000Z"
    assert body["expires_at"] == "2026-03-30T12:00:00.000Z"
    assert body["captures"] == [] and body["refunds"] == []
    assert len(body["klarna_reference"]) == 7


async def test_two_parcels_then_the_sneakers_refund_lands_on_capture_b(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client, 20000)
    first = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)

    assert first.status_code == 201 and first.content == b""
    capture_a = first.headers["Capture-Id"]
    assert first.headers["Location"] == f"https://sandbox.test{OM}/{order_id}/captures/{capture_a}"
    assert (await order(client, order_id))["status"] == "PART_CAPTURED"

    second = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_B)
    capture_b = second.headers["Capture-Id"]
    assert (await order(client, order_id))["status"] == "CAPTURED"

    refund = await client.post(f"{OM}/{order_id}/refunds", json=SNEAKERS_BACK)
    assert refund.status_code == 201 and refund.content == b""
    refund_id = refund.headers["Refund-Id"]
    assert refund.headers["Location"] == f"https://sandbox.test{OM}/{order_id}/refunds/{refund_id}"

    body = await order(client, order_id)
    reference = body["klarna_reference"]
    assert [(c["capture_id"], c["klarna_reference"], c["refunded_amount"]) for c in body["captures"]] == [
        (capture_a, f"{reference}-1", 0),
        (capture_b, f"{reference}-2", 10000),
    ]
    assert (body["captured_amount"], body["refunded_amount"], body["remaining_authorized_amount"]) == (
        20000,
        10000,
        0,
    )
    assert body["captures"][0]["order_lines"] == CAPTURE_A["order_lines"]
    assert body["captures"][0]["description"] == CAPTURE_A["description"]
    assert body["captures"][0]["reference"] == "parcel-A"
    assert body["refunds"][0]["refund_id"] == refund_id

    fetched = (await client.get(f"{OM}/{order_id}/refunds/{refund_id}")).json()
    assert fetched["refunded_amount"] == 10000 and fetched["order_lines"] == SNEAKERS_BACK["order_lines"]
    assert fetched["description"] == "Returning the sneakers"

    ledger = (await client.get(f"/_sandbox/orders/{order_id}/ledger")).json()
    assert ledger["refunds"] == [
        {
            "refund_id": refund_id,
            "refunded_amount": 10000,
            "allocated": True,
            "capture_id": capture_b,
            "capture_klarna_reference": f"{reference}-2",
            "reason": None,
        }
    ]
    assert ledger["unallocated_amount"] == 0


async def test_misallocated_refund_poisons_the_next_one(client: httpx.AsyncClient) -> None:
    order_id, _, _ = await seeded_order(client)
    sloppy = {**SNEAKERS_BACK, "refunded_amount": 9000}  # lines still say 10000
    tshirt = {"refunded_amount": 3000, "order_lines": [line("A12345", 3000, "T-shirt")]}

    assert (await client.post(f"{OM}/{order_id}/refunds", json=sloppy)).status_code == 201
    assert (await client.post(f"{OM}/{order_id}/refunds", json=tshirt)).status_code == 201

    body = await order(client, order_id)
    assert body["refunded_amount"] == 12000
    assert [c["refunded_amount"] for c in body["captures"]] == [0, 0]  # booked on the order in general
    ledger = (await client.get(f"/_sandbox/orders/{order_id}/ledger")).json()
    first_refund = ledger["refunds"][0]["refund_id"]
    assert [(r["allocated"], r["reason"]) for r in ledger["refunds"]] == [
        (False, "order lines sum to 10000, not refunded_amount 9000"),
        (False, f"an earlier refund ({first_refund}) of this order failed allocation"),
    ]
    assert ledger["unallocated_amount"] == 12000


async def test_capture_list_and_single_capture(client: httpx.AsyncClient) -> None:
    order_id, capture_a, capture_b = await seeded_order(client)

    listed = (await client.get(f"{OM}/{order_id}/captures")).json()
    single = (await client.get(f"{OM}/{order_id}/captures/{capture_b}")).json()

    assert [c["capture_id"] for c in listed] == [capture_a, capture_b]
    assert single == listed[1]
    assert single["captured_amount"] == 10000 and single["captured_at"] == "2026-03-02T12:00:00.000Z"


async def test_shipping_info_is_appended_to_the_capture(client: httpx.AsyncClient) -> None:
    order_id, capture_a, _ = await seeded_order(client)
    info = {
        "shipping_company": "DHL US",
        "shipping_method": "Home",
        "tracking_number": "63456415674545679874",
    }

    response = await client.post(
        f"{OM}/{order_id}/captures/{capture_a}/shipping-info", json={"shipping_info": [info]}
    )

    assert response.status_code == 204 and response.content == b""
    assert (await client.get(f"{OM}/{order_id}/captures/{capture_a}")).json()["shipping_info"] == [info]


async def test_full_refund_of_a_fully_captured_order_closes_it(client: httpx.AsyncClient) -> None:
    order_id, _, _ = await seeded_order(client)
    everything = {
        "refunded_amount": 20000,
        "order_lines": A_LINES + B_LINES,
    }

    await client.post(f"{OM}/{order_id}/refunds", json=everything)

    assert (await order(client, order_id))["status"] == "CLOSED"


async def test_release_remaining_authorization_after_a_part_capture(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client, 20000)
    await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)

    response = await client.post(f"{OM}/{order_id}/release-remaining-authorization")

    assert response.status_code == 204
    body = await order(client, order_id)
    assert (body["status"], body["remaining_authorized_amount"], body["order_amount"]) == (
        "CAPTURED",
        0,
        20000,
    )
    again = await client.post(f"{OM}/{order_id}/release-remaining-authorization")
    assert_error(
        again, 403, "NOT_ALLOWED", "Order is fully captured. Remaining authorization cannot be released."
    )


async def test_cancel_an_uncaptured_order(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)

    assert (await client.post(f"{OM}/{order_id}/cancel")).status_code == 204

    body = await order(client, order_id)
    assert (body["status"], body["remaining_authorized_amount"]) == ("CANCELLED", 0)


async def test_extend_authorization_time(client: httpx.AsyncClient, clock: FakeClock) -> None:
    order_id = await create_order(client)
    clock.advance(days=20)

    assert (await client.post(f"{OM}/{order_id}/extend-authorization-time")).status_code == 204
    assert (await order(client, order_id))["expires_at"] == "2026-04-19T12:00:00.000Z"  # day 20 + 28

    for _ in range(5):  # keep extending, days 47 .. 155: capped 180 days after creation
        clock.advance(days=27)
        assert (await client.post(f"{OM}/{order_id}/extend-authorization-time")).status_code == 204
    assert (await order(client, order_id))["expires_at"] == "2026-08-29T12:00:00.000Z"
    at_limit = await client.post(f"{OM}/{order_id}/extend-authorization-time")
    limit = (
        "Order has reached the maximum authorization time of 180 days. Authorization time cannot be extended."
    )
    assert_error(at_limit, 403, "NOT_ALLOWED", limit)

    clock.advance(days=25)  # day 180: the authorization is over for good
    refused = await client.post(f"{OM}/{order_id}/extend-authorization-time")
    assert_error(refused, 403, "NOT_ALLOWED", "Order is expired. Authorization time cannot be extended.")


async def test_order_expires_when_the_clock_passes_expires_at(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    order_id = await create_order(client)
    clock.advance(days=28)

    assert (await order(client, order_id))["status"] == "EXPIRED"
    capture = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)
    assert_error(capture, 403, "CAPTURE_NOT_ALLOWED", f"Order {order_id} is expired. Capture not possible.")
    extend = await client.post(f"{OM}/{order_id}/extend-authorization-time")
    assert_error(extend, 403, "NOT_ALLOWED", "Order is expired. Authorization time cannot be extended.")


# --- refusals ----------------------------------------------------------------------------


async def test_capture_above_remaining_authorization(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client, 15000)
    await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)

    response = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_B)

    assert_error(
        response,
        403,
        "CAPTURE_NOT_ALLOWED",
        "Captured amount is higher than the remaining authorized amount. Capture not possible.",
    )
    assert len((await order(client, order_id))["captures"]) == 1


async def test_capture_on_cancelled_order_and_zero_capture(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    zero = await client.post(f"{OM}/{order_id}/captures", json={"captured_amount": 0})
    await client.post(f"{OM}/{order_id}/cancel")
    cancelled = await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)

    assert_error(zero, 403, "CAPTURE_NOT_ALLOWED", "Captured amount must be positive. Capture not possible.")
    assert_error(cancelled, 403, "CAPTURE_NOT_ALLOWED", "Order is cancelled. Capture not possible.")


async def test_refund_refusals(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    no_captures = await client.post(f"{OM}/{order_id}/refunds", json=SNEAKERS_BACK)
    await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_B)
    await client.post(
        f"{OM}/{order_id}/refunds", json={**SNEAKERS_BACK, "refunded_amount": 6000, "order_lines": []}
    )
    over = await client.post(f"{OM}/{order_id}/refunds", json={"refunded_amount": 4001})

    assert_error(no_captures, 403, "REFUND_NOT_ALLOWED", "Order has no captures. Refund not possible.")
    assert_error(over, 403, "REFUND_NOT_ALLOWED", "Over refund is not allowed. Refund not possible.")
    assert (await client.post(f"{OM}/{order_id}/refunds", json={"refunded_amount": 4000})).status_code == 201
    assert (await order(client, order_id))["refunded_amount"] == 10000


async def test_cancel_refusals(client: httpx.AsyncClient) -> None:
    order_id, _, _ = await seeded_order(client)

    response = await client.post(f"{OM}/{order_id}/cancel")

    assert_error(response, 403, "CANCEL_NOT_ALLOWED", "Order has previous captures. Cancel not possible.")


async def test_release_refusals(client: httpx.AsyncClient) -> None:
    fresh = await create_order(client)
    cancelled = await create_order(client)
    await client.post(f"{OM}/{cancelled}/cancel")

    no_captures = await client.post(f"{OM}/{fresh}/release-remaining-authorization")
    after_cancel = await client.post(f"{OM}/{cancelled}/release-remaining-authorization")

    assert_error(
        no_captures, 403, "NOT_ALLOWED", "Order has no captures. Remaining authorization cannot be released."
    )
    assert_error(
        after_cancel, 403, "NOT_ALLOWED", "Order is cancelled. Remaining authorization cannot be released."
    )


async def test_shipping_info_refusals(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)
    body = {"shipping_info": [{"tracking_number": "1"}]}

    no_captures = await client.post(f"{OM}/{order_id}/captures/nope/shipping-info", json=body)
    await client.post(f"{OM}/{order_id}/captures", json=CAPTURE_A)
    unknown = await client.post(f"{OM}/{order_id}/captures/nope/shipping-info", json=body)

    assert_error(no_captures, 403, "NOT_ALLOWED", "Order has no captures. Shipping info cannot be added.")
    assert_error(unknown, 404, "NO_SUCH_CAPTURE", "Capture nope not found.")


async def test_not_found_codes(client: httpx.AsyncClient) -> None:
    order_id = await create_order(client)

    assert_error(await client.get(f"{OM}/missing"), 404, "NO_SUCH_ORDER", "Order missing not found.")
    assert_error(await client.post(f"{OM}/missing/captures", json=CAPTURE_A), 404, "NO_SUCH_ORDER")
    assert_error(await client.get(f"{OM}/missing/captures"), 404, "NO_SUCH_ORDER")
    assert_error(await client.post(f"{OM}/missing/cancel"), 404, "NO_SUCH_ORDER")
    assert_error(await client.post(f"{OM}/missing/refunds", json=SNEAKERS_BACK), 404, "NOT_FOUND")
    assert_error(await client.get(f"{OM}/{order_id}/captures/nope"), 404, "NO_SUCH_CAPTURE")
    assert_error(
        await client.get(f"{OM}/{order_id}/refunds/nope"), 404, "NOT_FOUND", "Refund nope not found."
    )
    assert_error(await client.get(f"{OM}/{order_id}/nonsense"), 404, "NOT_FOUND")
    assert_error(await client.delete(f"{OM}/{order_id}"), 405, "METHOD_NOT_ALLOWED")


# --- admin API ---------------------------------------------------------------------------


async def test_admin_create_order_with_id_and_lines(client: httpx.AsyncClient) -> None:
    lines = [line("A12345", 3000)]
    body = {"purchase_currency": "sek", "order_amount": 3000, "order_lines": lines, "order_id": "order-1"}

    created = await client.post("/_sandbox/orders", json=body)
    duplicate = await client.post("/_sandbox/orders", json=body)
    bad = await client.post("/_sandbox/orders", json={"order_amount": "3000"})

    assert created.status_code == 201
    assert created.json()["order_id"] == "order-1" and created.json()["order_lines"] == lines
    assert created.json()["purchase_currency"] == "SEK"
    assert_error(duplicate, 409, "CONFLICT", "Order order-1 already exists.")
    assert_error(bad, 400, "BAD_VALUE", "Bad value: purchase_currency", "Bad value: order_amount")
    assert [o["order_id"] for o in (await client.get("/_sandbox/orders")).json()] == ["order-1"]


async def test_admin_curl_style_body_without_content_type(client: httpx.AsyncClient) -> None:
    raw = b'{"purchase_currency": "EUR", "order_amount": 100}'
    response = await client.post(
        "/_sandbox/orders", content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 201


async def test_admin_clock_and_reset(client: httpx.AsyncClient, state: SandboxState) -> None:
    order_id = await create_order(client)

    moved = await client.post("/_sandbox/clock", json={"advance_seconds": 28 * 86400})
    backwards = await client.post("/_sandbox/clock", json={"advance_seconds": -1})

    assert moved.json() == {"now": "2026-03-30T12:00:00.000Z"}
    assert (await client.get("/_sandbox/clock")).json() == moved.json()
    assert_error(backwards, 400, "BAD_VALUE", "Bad value: advance_seconds")
    assert (await order(client, order_id))["status"] == "EXPIRED"

    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert state.orders == {} and state.request_log() == []
    assert (await client.get("/_sandbox/clock")).json() == {"now": "2026-03-02T12:00:00.000Z"}


async def test_admin_ledger_of_unknown_order(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/_sandbox/orders/nope/ledger"), 404, "NO_SUCH_ORDER")
