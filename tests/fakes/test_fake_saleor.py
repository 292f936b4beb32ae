"""The fake Saleor against Saleor's documented and observed rules (real HTTP throughout)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.saleor import (
    CreatedOrder,
    FakeSaleor,
    InstallationFailed,
    InstalledApp,
    SaleorError,
    captures_dir,
    require_schema,
    serve_fake_saleor,
    verify_detached,
    verify_jwt,
)
from tests.fakes.stub_app import StubApp, serve_stub_app

REPORT = """
mutation Report($id: ID!, $type: TransactionEventTypeEnum!, $psp: String!, $amount: PositiveDecimal,
                $actions: [TransactionActionEnum!]) {
  transactionEventReport(id: $id, type: $type, pspReference: $psp, amount: $amount,
                         availableActions: $actions, message: "from test") {
    alreadyProcessed
    transaction { chargedAmount { amount } authorizedAmount { amount } refundedAmount { amount }
                  canceledAmount { amount } actions }
    transactionEvent { id type pspReference amount { amount currency } createdBy { ... on App { id } } }
    errors { field code message }
  }
}
"""


def captured_subscriptions() -> dict[str, str]:
    """The documents a real 3.23.28 executed, keyed by the ``# EVENT`` headings."""
    require_schema()  # same shared dir: skip (or fail in CI) when it is missing
    text = (captures_dir() / "subscriptions.graphql").read_text(encoding="utf-8")
    docs: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            current = line[2:].strip()
            docs[current] = []
        elif current:
            docs[current].append(line)
    return {name: "\n".join(lines) for name, lines in docs.items()}


def stub_webhooks() -> list[tuple[str, str, list[str], list[str]]]:
    docs = captured_subscriptions()
    return [
        ("fulfillment-created", docs["FULFILLMENT_CREATED"], ["FULFILLMENT_CREATED"], []),
        ("charge", docs["TRANSACTION_CHARGE_REQUESTED"], [], ["TRANSACTION_CHARGE_REQUESTED"]),
        ("refund", docs["TRANSACTION_REFUND_REQUESTED"], [], ["TRANSACTION_REFUND_REQUESTED"]),
        ("cancel", docs["TRANSACTION_CANCELATION_REQUESTED"], [], ["TRANSACTION_CANCELATION_REQUESTED"]),
        ("observer", docs["OBSERVER"], [], []),  # events inferred from the query, like Saleor
    ]


@pytest.fixture
def saleor() -> Iterator[FakeSaleor]:  # skips without the shared dir (FakeSaleor calls require_schema)
    with serve_fake_saleor() as fake:
        yield fake


@pytest.fixture
def stub() -> Iterator[StubApp]:
    with serve_stub_app(StubApp(webhooks=stub_webhooks())) as app:
        yield app


@pytest.fixture
async def app(saleor: FakeSaleor, stub: StubApp) -> AsyncIterator[InstalledApp]:
    installed = await saleor.install(f"{stub.base_url}/api/manifest")
    yield installed


def captured_order(saleor: FakeSaleor) -> CreatedOrder:
    """The order of the real run: EUR, 25 % VAT, 30 + 70 + 100, shipping 10."""
    return saleor.create_order(
        lines=[
            ("TSHIRT-1", "Outfit", 1, "30.00", "0.25"),
            ("JEANS-1", "Outfit", 1, "70.00", "0.25"),
            ("SNEAKERS-1", "Outfit", 1, "100.00", "0.25"),
        ],
        shipping=("10.00", "0.25"),
    )


async def gql(
    saleor: FakeSaleor, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            saleor.api_url, json={"query": query, "variables": variables}, headers=headers
        )
    return response.status_code, response.json()


async def report(
    saleor: FakeSaleor, token: str, txn: str, type_: str, psp: str, amount: object = None, **extra: Any
) -> Any:
    variables = {"id": txn, "type": type_, "psp": psp, "amount": amount, **extra}
    status, body = await gql(saleor, REPORT, variables, token)
    assert status == 200, body
    return body


async def reported(
    saleor: FakeSaleor, token: str, txn: str, type_: str, psp: str, amount: object, **extra: Any
) -> Any:
    """The ``transactionEventReport`` payload of a report."""
    return (await report(saleor, token, txn, type_, psp, amount, **extra))["data"]["transactionEventReport"]


def shape(value: Any) -> Any:
    """Keys all the way down (first element of lists), to compare with a capture."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


# -- GraphQL ----------------------------------------------------------------------------


async def test_app_token_queries_the_real_schema(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    # The stub proved its token during registration and fetched the JWKS, like the SDK.
    assert stub.app_id == app.id and stub.token == app.token
    assert stub.jwks == saleor.jwks()
    order = captured_order(saleor)
    query = """query($id: ID!) { order(id: $id) { number channel { slug } shippingMethodName shippingTaxRate
      total { gross { amount currency } net { amount } tax { amount } }
      shippingPrice { gross { amount } net { amount } tax { amount } }
      lines { productName productSku quantity taxRate isGift isShippingRequired
        unitPrice { gross { amount } net { amount } tax { amount } }
        undiscountedUnitPrice { gross { amount } } totalPrice { gross { amount } net { amount } } } } }"""
    status, body = await gql(saleor, query, {"id": order.id}, app.token)
    assert status == 200 and "errors" not in body
    data = body["data"]["order"]
    assert data["number"] == "1" and data["channel"]["slug"] == "default-channel"
    assert data["total"] == {
        "gross": {"amount": 210.0, "currency": "EUR"},
        "net": {"amount": 168.0},
        "tax": {"amount": 42.0},
    }
    assert data["shippingPrice"]["net"] == {"amount": 8.0} and data["shippingTaxRate"] == 0.25
    assert data["lines"][2]["unitPrice"] == {
        "gross": {"amount": 100.0},
        "net": {"amount": 80.0},
        "tax": {"amount": 20.0},
    }
    assert data["lines"][0]["taxRate"] == 0.25 and data["lines"][0]["isGift"] is False


async def test_unknown_or_revoked_token_is_a_permission_error_with_http_200(
    saleor: FakeSaleor, app: InstalledApp
) -> None:
    status, body = await gql(saleor, "{ app { id } }", token="x" * 30)
    assert status == 200 and body["data"] == {"app": None}
    assert body["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"
    saleor.revoke_token(app)
    status, body = await gql(saleor, "{ app { id } }", token=app.token)
    assert status == 200 and body["data"]["app"] is None


async def test_invalid_documents_are_http_400(saleor: FakeSaleor, app: InstalledApp) -> None:
    assert (await gql(saleor, "{ app { nope } }", token=app.token))[0] == 400
    assert (await gql(saleor, "{ app { id ", token=app.token))[0] == 400
    async with httpx.AsyncClient() as client:
        assert (await client.post(saleor.api_url, content=b"not json")).status_code == 400


async def test_orders_sweep_filters_on_updated_at_and_pages(saleor: FakeSaleor, app: InstalledApp) -> None:
    first = captured_order(saleor)
    since = saleor.order(first.id)["updatedAt"]
    captured_order(saleor)
    third = captured_order(saleor)
    saleor.fulfill(first.id, {first.line(0): 1})  # touches order 1 last
    query = """query($since: DateTime!, $after: String) {
      orders(filter: {updatedAt: {gte: $since}}, sortBy: {field: LAST_MODIFIED_AT, direction: ASC},
             first: 2, after: $after) { edges { node { number } } pageInfo { hasNextPage endCursor } } }"""
    _, page1 = await gql(saleor, query, {"since": since}, app.token)
    orders = page1["data"]["orders"]
    assert [e["node"]["number"] for e in orders["edges"]] == ["2", "3"]
    assert orders["pageInfo"]["hasNextPage"] is True
    _, page2 = await gql(saleor, query, {"since": since, "after": orders["pageInfo"]["endCursor"]}, app.token)
    assert [e["node"]["number"] for e in page2["data"]["orders"]["edges"]] == ["1"]
    _, later = await gql(saleor, query, {"since": saleor.order(third.id)["updatedAt"]}, app.token)
    assert [e["node"]["number"] for e in later["data"]["orders"]["edges"]] == ["3", "1"]


# -- transactionEventReport ----------------------------------------------------------------


async def test_event_report_deduplicates_and_moves_amounts(saleor: FakeSaleor, app: InstalledApp) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    body = await reported(
        saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 100, actions=["REFUND", "CANCEL"]
    )
    assert body["alreadyProcessed"] is False and body["errors"] == []
    assert body["transaction"]["chargedAmount"]["amount"] == 100.0
    assert body["transaction"]["authorizedAmount"]["amount"] == 110.0
    assert body["transaction"]["actions"] == ["CANCEL", "REFUND"]
    assert body["transactionEvent"]["createdBy"] == {"id": app.id}

    again = await reported(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", "100.00")
    assert again["alreadyProcessed"] is True
    assert again["transactionEvent"]["id"] == body["transactionEvent"]["id"]
    assert len(saleor.transaction(txn).of_type("CHARGE_SUCCESS")) == 1

    other = await reported(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 99)
    assert other["errors"][0]["code"] == "INCORRECT_DETAILS" and other["errors"][0]["field"] == "pspReference"
    view = saleor.transaction(txn)
    assert view.charged == Decimal("100.00") and view.authorized == Decimal("110.00")
    assert view.of_type("CHARGE_FAILURE")[0].amount == Decimal("99.00")  # recorded, not counted

    await report(saleor, app.token, txn, "REFUND_SUCCESS", "ref-1", "40")
    await report(saleor, app.token, txn, "CANCEL_SUCCESS", "can-1", "110")
    view = saleor.transaction(txn)
    assert (view.authorized, view.charged, view.refunded, view.canceled) == (
        Decimal("0.00"), Decimal("60.00"), Decimal("40.00"), Decimal("110.00"),
    )  # fmt: skip


async def test_event_report_needs_the_owning_app_with_handle_payments(
    saleor: FakeSaleor, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    with serve_stub_app(StubApp(webhooks=[], identifier="other.app")) as other_stub:
        other = await saleor.install(f"{other_stub.base_url}/api/manifest")
    body = await report(saleor, other.token, txn, "CHARGE_SUCCESS", "cap-1", 10)
    assert body["data"]["transactionEventReport"] is None
    assert body["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"
    body = await report(saleor, "unknown-token", txn, "CHARGE_SUCCESS", "cap-1", 10)
    assert body["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"
    assert saleor.transaction(txn).charged == 0


# -- webhooks -------------------------------------------------------------------------------


async def test_fulfillment_created_payload_is_signed_and_shaped_like_the_capture(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    saleor.create_transaction(order.id, app, "klarna-order-123", "210.00", message="authorized by stub app")
    saleor.fulfill(order.id, {order.line(0): 1, order.line(1): 1})
    await saleor.deliver_pending()

    [received] = stub.got("fulfillment_created")
    async with httpx.AsyncClient() as client:
        jwks = (await client.get(f"{saleor.base_url}/.well-known/jwks.json")).json()
    header = verify_detached(received.headers["saleor-signature"], received.body, jwks)
    assert header == {"alg": "RS256", "b64": False, "crit": ["b64"], "kid": saleor.key.kid, "typ": "JWT"}
    with pytest.raises(ValueError, match="does not verify"):
        verify_detached(received.headers["saleor-signature"], received.body + b" ", jwks)
    assert received.headers["x-saleor-signature"] == received.headers["saleor-signature"]
    assert received.headers["saleor-event"] == received.headers["x-saleor-event"] == "fulfillment_created"
    assert received.headers["saleor-api-url"] == saleor.api_url
    assert received.headers["saleor-domain"] == httpx.URL(saleor.base_url).netloc.decode()
    assert received.headers["content-type"] == "application/json"

    payload = received.payload
    assert received.body == json.dumps(payload).encode()  # Saleor's ", " / ": " separators
    assert "errors" not in payload
    capture = json.loads((captures_dir() / "0003_fulfillment_created.raw").read_bytes())
    assert list(payload) == list(capture)
    assert shape(payload) == shape(capture)
    assert payload["fulfillment"]["status"] == "FULFILLED"
    assert [line["orderLine"]["productSku"] for line in payload["fulfillment"]["lines"]] == [
        "TSHIRT-1",
        "JEANS-1",
    ]
    assert payload["order"]["status"] == "PARTIALLY_FULFILLED"
    assert payload["recipient"]["id"] == app.id
    assert payload["issuingPrincipal"]["__typename"] == "User"


async def test_fulfill_emits_approved_and_fulfilled_only_when_complete(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    await saleor.deliver_pending()
    assert [a.event_type for a in saleor.sent()] == ["ORDER_CREATED", "ORDER_CONFIRMED"]
    saleor.fulfill(order.id, {order.line(0): 1, order.line(1): 1})
    first = [a.event_type for a in await saleor.deliver_pending()]
    assert first == ["FULFILLMENT_CREATED", "ORDER_UPDATED"]
    saleor.fulfill(order.id, {order.line(2): 1})
    second = [a.event_type for a in await saleor.deliver_pending()]
    assert second == ["FULFILLMENT_CREATED", "FULFILLMENT_APPROVED", "ORDER_UPDATED", "ORDER_FULFILLED"]
    assert all(a.status == 200 for a in saleor.sent())

    last = saleor.order(order.id)["fulfillments"][-1]["id"]
    saleor.cancel_fulfillment(last)
    assert [a.event_type for a in await saleor.deliver_pending()] == ["FULFILLMENT_CANCELED", "ORDER_UPDATED"]
    data = saleor.order(order.id)
    assert data["fulfillments"][-1]["status"] == "CANCELED" and data["status"] == "PARTIALLY_FULFILLED"
    assert data["lines"][2]["quantityFulfilled"] == 0


async def test_return_makes_the_original_fulfillment_disappear(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    kept = saleor.fulfill(order.id, {order.line(0): 1, order.line(1): 1})
    shipped = saleor.fulfill(order.id, {order.line(2): 1})
    await saleor.deliver_pending()
    returned = saleor.return_products(order.id, {shipped.line_ids[order.line(2)]: 1})
    assert [a.event_type for a in await saleor.deliver_pending()] == ["ORDER_UPDATED"]

    data = saleor.order(order.id)
    assert [(f["id"], f["status"], f["fulfillmentOrder"]) for f in data["fulfillments"]] == [
        (kept.id, "FULFILLED", 1),
        (returned.id, "RETURNED", 3),
    ]
    assert data["fulfillments"][1]["lines"][0]["orderLine"]["id"] == order.line(2)
    assert data["fulfillments"][1]["lines"][0]["id"] != shipped.line_ids[order.line(2)]
    assert data["status"] == "PARTIALLY_RETURNED"
    assert data["lines"][2]["quantityFulfilled"] == 1


async def test_partial_return_keeps_the_fulfillment_with_less(saleor: FakeSaleor) -> None:
    order = saleor.create_order(lines=[("SKU", "Socks", 3, "5.00", "0.25")])
    shipped = saleor.fulfill(order.id, {order.line(0): 3})
    saleor.return_products(order.id, {shipped.line_ids[order.line(0)]: 1})
    fulfillments = saleor.order(order.id)["fulfillments"]
    assert [(f["status"], f["lines"][0]["quantity"]) for f in fulfillments] == [
        ("FULFILLED", 2),
        ("RETURNED", 1),
    ]


async def test_async_delivery_retries_5xx_drops_4xx(saleor: FakeSaleor) -> None:
    doc = "subscription { event { ... on OrderUpdated { order { id } } } }"
    stub = StubApp(webhooks=[("observer", doc, ["ORDER_UPDATED"], [])])
    with serve_stub_app(stub):
        await saleor.install(f"{stub.base_url}/api/manifest")
        stub.responders["order_updated"] = [(503, b"")]
        order = saleor.create_order(lines=[("SKU", "Socks", 1, "5.00")])
        saleor.fulfill(order.id, {order.line(0): 1})
        [attempt] = await saleor.deliver_pending()
        assert attempt.status == 503 and saleor.pending("ORDER_UPDATED")
        for _ in range(5):
            [retry] = await saleor.retry_failed()
            assert retry.body == attempt.body  # async retries resend the stored payload
        assert not saleor.pending() and saleor.deliveries[-1].state == "failed"
        assert len(saleor.deliveries[-1].attempts) == 6

        stub.responders["order_updated"] = [(404, b"")]
        saleor.cancel_fulfillment(saleor.order(order.id)["fulfillments"][0]["id"])
        await saleor.deliver_pending()
        assert saleor.deliveries[-1].state == "dropped" and not await saleor.retry_failed()


async def test_delivery_options_duplicates_and_host_without_port() -> None:
    doc = "subscription { event { ... on OrderCreated { order { number } } } }"
    stub = StubApp(webhooks=[("observer", doc, ["ORDER_CREATED"], [])])
    with serve_fake_saleor(duplicate_deliveries=True, host_without_port=True) as saleor, serve_stub_app(stub):
        await saleor.install(f"{stub.base_url}/api/manifest")
        saleor.create_order(lines=[("SKU", "Socks", 1, "5.00")])
        await saleor.deliver_pending()
        first, second = stub.got("order_created")
        assert first.body == second.body and first.headers["host"] == "127.0.0.1"


# -- sync transaction webhooks ---------------------------------------------------------------


async def test_sync_success_is_applied_and_order_events_follow(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    saleor.fulfill(order.id, {order.line(0): 1, order.line(1): 1, order.line(2): 1})
    await saleor.deliver_pending()
    answer = {"pspReference": "c1", "result": "CHARGE_SUCCESS", "amount": 100.0}
    stub.answer("transaction_charge_requested", (200, answer))
    saleor.request_action(txn, "CHARGE", "100")
    # Saleor answers the mutation at once; the webhook goes out from a background task.
    assert saleor.transaction(txn).of_type("CHARGE_REQUEST")[0].psp_reference == ""
    sent = [a.event_type for a in await saleor.deliver_pending()]
    assert sent == ["TRANSACTION_CHARGE_REQUESTED", "ORDER_PAID", "ORDER_UPDATED"]

    [received] = stub.got("transaction_charge_requested")
    payload = received.payload
    assert payload["action"] == {"actionType": "CHARGE", "amount": 100.0, "currency": "EUR"}
    assert payload["issuingPrincipal"] is None and "grantedRefund" not in payload
    capture = json.loads((captures_dir() / "0011_transaction_charge_requested.raw").read_bytes())
    assert shape(payload) == shape(capture)
    view = saleor.transaction(txn)
    assert (view.charged, view.authorized, view.charge_pending) == (Decimal("100.00"), Decimal("110.00"), 0)
    assert view.of_type("CHARGE_REQUEST")[0].psp_reference == "c1"
    assert view.of_type("CHARGE_REQUEST")[0].created_by == "VXNlcjox"  # User:1, the staff user


@pytest.mark.parametrize(
    ("status", "answer", "cause"),
    [
        (200, {}, "pspReference"),
        (200, b"<html>oops</html>", "Failed to delivery request."),
        (200, {"pspReference": "c1", "result": "charge_success"}, "result"),
        (200, {"result": "CHARGE_SUCCESS", "amount": 10}, "pspReference"),
        (200, {"pspReference": "c1", "result": "REFUND_SUCCESS"}, "result"),
    ],
)
async def test_sync_answers_saleor_cannot_use_become_failure_events(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp, status: int, answer: object, cause: str
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    stub.answer("transaction_charge_requested", (status, answer))
    saleor.request_action(txn, "CHARGE", "50")
    await saleor.deliver_pending()
    view = saleor.transaction(txn)
    [failure] = view.of_type("CHARGE_FAILURE")
    assert cause in failure.message and failure.amount == Decimal("50.00")
    assert view.charged == 0 and view.charge_pending == 0 and view.authorized == Decimal("210.00")


async def test_sync_json_answer_is_parsed_whatever_the_status(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    stub.answer(
        "transaction_cancelation_requested", (400, {"pspReference": "x1", "result": "CANCEL_SUCCESS"})
    )
    saleor.request_action(txn, "CANCEL")
    await saleor.deliver_pending()
    [received] = stub.got("transaction_cancelation_requested")
    assert received.payload["action"]["amount"] == 210.0  # the remaining authorization
    view = saleor.transaction(txn)
    assert (view.authorized, view.canceled) == (Decimal("0.00"), Decimal("210.00"))


async def test_sync_pending_answer_waits_for_the_report(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 200)
    stub.answer("transaction_refund_requested", (200, {"pspReference": "r-async"}))
    saleor.request_action(txn, "REFUND", "60")
    await saleor.deliver_pending()
    view = saleor.transaction(txn)
    assert view.refund_pending == Decimal("60.00") and view.refunded == 0
    assert stub.got("transaction_refund_requested")[0].payload["grantedRefund"] is None

    done = await reported(saleor, app.token, txn, "REFUND_SUCCESS", "r-async", 60)
    assert done["alreadyProcessed"] is False
    view = saleor.transaction(txn)
    assert (view.refund_pending, view.refunded, view.charged) == (0, Decimal("60.00"), Decimal("140.00"))
    again = await reported(saleor, app.token, txn, "REFUND_SUCCESS", "r-async", 60)
    assert again["alreadyProcessed"] is True


async def test_sync_5xx_is_retried_with_an_empty_signed_body(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    stub.answer(
        "transaction_charge_requested",
        (500, b"boom"),
        (200, {"pspReference": "c-retry", "result": "CHARGE_SUCCESS"}),
    )
    saleor.request_action(txn, "CHARGE", "30")
    await saleor.deliver_pending()
    [first] = saleor.sent("TRANSACTION_CHARGE_REQUESTED")
    assert first.status == 500 and first.body and saleor.transaction(txn).charged == 0
    [retry] = await saleor.retry_failed()
    assert retry.body == b"" and retry.headers["Saleor-Event"] == "transaction_charge_requested"
    verify_detached(retry.headers["Saleor-Signature"], b"", saleor.jwks())
    assert stub.got("transaction_charge_requested")[1].body == b""
    view = saleor.transaction(txn)
    assert view.charged == Decimal("30.00")  # the answer to the empty retry still counts (0051)


async def test_sync_gives_up_after_five_retries(saleor: FakeSaleor, stub: StubApp, app: InstalledApp) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    stub.answer("transaction_charge_requested", (502, b""))
    saleor.request_action(txn, "CHARGE", "30")
    await saleor.deliver_pending()
    for _ in range(5):
        await saleor.retry_failed()
    assert await saleor.retry_failed() == []
    [failure] = saleor.transaction(txn).of_type("CHARGE_FAILURE")
    assert failure.message == "Failed to delivery request."


async def test_request_without_owner_webhook_fails_at_once(saleor: FakeSaleor) -> None:
    stub = StubApp(webhooks=[])
    with serve_stub_app(stub):
        app = await saleor.install(f"{stub.base_url}/api/manifest")
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    with pytest.raises(SaleorError) as error:
        saleor.request_action(txn, "CHARGE")
    assert error.value.code == "MISSING_TRANSACTION_ACTION_REQUEST_WEBHOOK"
    assert saleor.transaction(txn).of_type("CHARGE_FAILURE")


# -- granted refunds ---------------------------------------------------------------------------


async def test_grant_is_capped_at_the_charged_amount(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    await saleor.deliver_pending()
    nothing = saleor.grant_refund(order.id, txn, {order.line(2): 1})
    assert not saleor.pending()  # granting sends no webhook
    assert saleor.granted_refund(nothing)["amount"] == Decimal("0.00")
    assert saleor.granted_refund(nothing)["lines"] == {order.line(2): 1}  # the lines stay

    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 30)
    partial = saleor.grant_refund(order.id, txn, {order.line(1): 1}, reason="returned")
    assert saleor.granted_refund(partial)["amount"] == Decimal("30.00")
    with pytest.raises(SaleorError) as error:
        saleor.grant_refund(order.id, txn, amount="30.01")
    assert error.value.code == "AMOUNT_GREATER_THAN_AVAILABLE"

    # Requesting the 0.00 grant asks for everything charged (observed), not for its lines.
    stub.answer("transaction_refund_requested", (200, {"pspReference": "r1", "result": "REFUND_SUCCESS"}))
    saleor.request_refund_for_granted_refund(nothing)
    assert saleor.granted_refund(nothing)["status"] == "PENDING"
    await saleor.deliver_pending()
    payload = stub.got("transaction_refund_requested")[0].payload
    assert payload["action"]["amount"] == 30.0
    assert payload["grantedRefund"]["amount"]["amount"] == 0.0
    assert payload["grantedRefund"]["status"] == "NONE"  # generated before the status moved
    assert [e["type"] for e in payload["grantedRefund"]["transactionEvents"]] == ["REFUND_REQUEST"]
    assert payload["grantedRefund"]["lines"][0]["orderLine"]["id"] == order.line(2)
    assert saleor.granted_refund(nothing)["status"] == "SUCCESS"
    assert saleor.transaction(txn).refunded == Decimal("30.00")
    with pytest.raises(SaleorError) as error:
        saleor.request_refund_for_granted_refund(partial)  # 30.00 > 0.00 still charged
    assert error.value.code == "AMOUNT_GREATER_THAN_AVAILABLE"


async def test_grant_line_quantities_and_shipping_are_granted_once(
    saleor: FakeSaleor, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 210)
    grant = saleor.grant_refund(order.id, txn, {order.line(0): 1}, include_shipping=True)
    assert saleor.granted_refund(grant)["amount"] == Decimal("40.00")
    with pytest.raises(SaleorError, match="QUANTITY_GREATER_THAN_AVAILABLE"):
        saleor.grant_refund(order.id, txn, {order.line(0): 1})
    with pytest.raises(SaleorError, match="SHIPPING_COSTS_ALREADY_GRANTED"):
        saleor.grant_refund(order.id, txn, include_shipping=True)


# -- money -------------------------------------------------------------------------------------


async def test_prices_entered_gross_round_like_saleor(saleor: FakeSaleor) -> None:
    order = saleor.create_order(lines=[("SKU-1", "Mug", 3, "9.99", "0.19")], shipping=("4.90", "0.19"))
    line = saleor.order(order.id)["lines"][0]
    assert line["totalPrice"] == {
        "gross": {"amount": 29.97},
        "net": {"amount": 25.18},
        "tax": {"amount": 4.79},
    }
    assert line["unitPrice"] == {"gross": {"amount": 9.99}, "net": {"amount": 8.39}}
    assert saleor.order(order.id)["shippingPrice"]["net"] == {"amount": 4.12}


async def test_order_discount_is_spread_over_lines_and_shipping(saleor: FakeSaleor) -> None:
    order = saleor.create_order(
        lines=[("A", "A", 1, "60.00", "0.25"), ("B", "B", 1, "30.00", "0.25")],
        shipping=("10.00", "0.25"),
        order_discount="10.00",
    )
    data = saleor.order(order.id)
    assert [line["totalPrice"]["gross"]["amount"] for line in data["lines"]] == [54.0, 27.0]
    assert data["shippingPrice"]["gross"]["amount"] == 9.0
    assert data["total"]["gross"]["amount"] == 90.0


async def test_zero_decimal_currency(saleor: FakeSaleor, app: InstalledApp) -> None:
    order = saleor.create_order(channel="jp", currency="JPY", lines=[("SKU", "Tea", 3, "1000", "0.10")])
    txn = saleor.create_transaction(order.id, app, "k-jp", "3000")
    body = await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-jp", 1000)
    event = body["data"]["transactionEventReport"]["transactionEvent"]
    assert event["amount"] == {"amount": 1000.0, "currency": "JPY"}
    query = "query($id: ID!) { order(id: $id) { total { gross { amount fractionDigits } net { amount } } } }"
    _, data = await gql(saleor, query, {"id": order.id}, app.token)
    assert data["data"]["order"]["total"] == {
        "gross": {"amount": 3000.0, "fractionDigits": 0},
        "net": {"amount": 2727.0},
    }


# -- keys, tokens, installation ------------------------------------------------------------------


async def test_key_rotation_changes_kid_and_signatures(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    old_jwks = saleor.jwks()
    old_kid = saleor.key.kid
    assert old_jwks["keys"][0]["kid"] == old_kid and old_jwks["keys"][0]["alg"] == "RS256"
    new_kid = saleor.rotate_key()
    assert new_kid != old_kid
    async with httpx.AsyncClient() as client:
        jwks = (await client.get(f"{saleor.base_url}/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid]
    order = captured_order(saleor)
    saleor.fulfill(order.id, {order.line(0): 1})
    await saleor.deliver_pending()
    [received] = stub.got("fulfillment_created")
    verify_detached(received.headers["saleor-signature"], received.body, jwks)
    with pytest.raises(ValueError, match="not in the key set"):
        verify_detached(received.headers["saleor-signature"], received.body, old_jwks)


async def test_dashboard_token_claims(saleor: FakeSaleor, app: InstalledApp) -> None:
    token = saleor.mint_dashboard_token(app, user_permissions=["MANAGE_APPS", "MANAGE_ORDERS"], expires_in=60)
    claims = verify_jwt(token, saleor.jwks())
    assert claims["exp"] - claims["iat"] == 60
    assert claims["iss"] == saleor.api_url and claims["app"] == app.id
    assert (claims["owner"], claims["type"], claims["is_staff"]) == ("saleor", "thirdparty", True)
    assert claims["permissions"] == ["MANAGE_ORDERS"]  # app ∩ user
    assert claims["user_permissions"] == ["MANAGE_APPS", "MANAGE_ORDERS"]
    assert {"email", "user_id"} <= claims.keys()


async def test_failed_registration_removes_the_app(saleor: FakeSaleor) -> None:
    stub = StubApp(webhooks=stub_webhooks(), register_status=403)
    with serve_stub_app(stub), pytest.raises(InstallationFailed, match="not allowed"):
        await saleor.install(f"{stub.base_url}/api/manifest")
    assert not saleor.store.apps
    bad = StubApp(webhooks=[("x", "subscription { event { ... on Nope { a } } }", ["ORDER_UPDATED"], [])])
    with serve_stub_app(bad), pytest.raises(InstallationFailed, match="Nope"):
        await saleor.install(f"{bad.base_url}/api/manifest")


async def test_install_headers_and_uninstall(saleor: FakeSaleor) -> None:
    doc = "subscription { event { ... on AppDeleted { app { id } recipient { id } } } }"
    stub = StubApp(webhooks=[("app-deleted", doc, ["APP_DELETED"], [])])
    with serve_stub_app(stub):
        app = await saleor.install(f"{stub.base_url}/api/manifest")
        await saleor.uninstall(app)
        await saleor.deliver_pending()
    [deleted] = stub.got("app_deleted")
    assert deleted.payload == {"app": {"id": app.id}, "recipient": {"id": app.id}}
    status, body = await gql(saleor, "{ app { id } }", token=app.token)
    assert status == 200 and body["data"]["app"] is None


async def test_shuffled_delivery_is_out_of_queue_order() -> None:
    doc = "subscription { event { ... on OrderCreated { order { number } } } }"
    stub = StubApp(webhooks=[("observer", doc, ["ORDER_CREATED"], [])])
    with serve_fake_saleor(shuffle=True, seed=7) as saleor, serve_stub_app(stub):
        await saleor.install(f"{stub.base_url}/api/manifest")
        for _ in range(8):
            saleor.create_order(lines=[("SKU", "Socks", 1, "5.00")])
        await saleor.deliver_pending()
        numbers = [r.payload["order"]["number"] for r in stub.got("order_created")]
        assert sorted(numbers, key=int) == [str(n) for n in range(1, 9)] and numbers != sorted(
            numbers, key=int
        )


async def test_sync_timeout_is_retried() -> None:
    stub = StubApp(webhooks=stub_webhooks())
    with serve_fake_saleor(timeout=httpx.Timeout(0.3)) as saleor, serve_stub_app(stub):
        app = await saleor.install(f"{stub.base_url}/api/manifest")
        order = captured_order(saleor)
        txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
        stub.answer("transaction_charge_requested", (200, {"pspReference": "c1", "result": "CHARGE_SUCCESS"}))
        stub.delays["transaction_charge_requested"] = 1.0
        saleor.request_action(txn, "CHARGE", "10")
        await saleor.deliver_pending()
        [timed_out] = saleor.sent("TRANSACTION_CHARGE_REQUESTED")
        assert timed_out.status is None and "Timeout" in (timed_out.error or "")
        stub.delays.clear()
        [retry] = await saleor.retry_failed()
        assert retry.status == 200 and saleor.transaction(txn).charged == Decimal("10.00")


async def test_install_sends_saleor_headers(saleor: FakeSaleor, stub: StubApp, app: InstalledApp) -> None:
    assert stub.manifest_headers["saleor-schema-version"] == "3.23"
    assert stub.register_headers["saleor-schema-version"] == "3.23"
    assert stub.register_headers["saleor-api-url"] == saleor.api_url
    assert stub.register_headers["saleor-domain"] == stub.register_headers["x-saleor-domain"]
    assert stub.register_headers["content-type"] == "application/json"
    webhooks = {w.name: w for w in saleor.store.apps[app.pk].webhooks}
    assert "ORDER_FULLY_PAID" in webhooks["observer"].async_events  # inferred from the query
    assert webhooks["refund"].sync_events == ["TRANSACTION_REFUND_REQUESTED"]
    with pytest.raises(InstallationFailed, match="already installed"):
        await saleor.install(f"{stub.base_url}/api/manifest")


def test_missing_schema_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KOM_SHARED_DIR", str(tmp_path))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="Saleor schema not found"):
        FakeSaleor()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        require_schema()


# -- the observed 3.23.28 run, replayed ----------------------------------------------------------


def _capture(name: str) -> Any:
    return json.loads((captures_dir() / name).read_bytes())


def _ledger(payload: Any) -> Any:
    """What a transaction payload says about money: amounts and (type, psp, amount) events."""
    txn = payload["transaction"]
    return (
        {
            k: txn[k]["amount"]
            for k in ("authorizedAmount", "chargedAmount", "refundedAmount", "canceledAmount")
        },
        [(e["type"], e["pspReference"], e["amount"]["amount"]) for e in txn["events"]],
        txn["actions"],
    )


async def test_replay_of_the_observed_run_matches_the_captures(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    async def step() -> list[str]:
        return sorted(a.event_type.lower() for a in await saleor.deliver_pending())

    order = captured_order(saleor)
    tshirt, jeans, sneakers = order.line_ids
    txn = saleor.create_transaction(
        order.id, app, "klarna-order-123", "210.00", message="authorized by stub app"
    )
    assert await step() == ["order_confirmed", "order_created", "order_updated"]

    saleor.fulfill(order.id, {tshirt: 1, jeans: 1})
    assert await step() == ["fulfillment_created", "order_updated"]
    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 100, actions=["CANCEL", "REFUND"])
    assert await step() == ["order_paid", "order_updated"]
    shipped = saleor.fulfill(order.id, {sneakers: 1})
    assert await step() == ["fulfillment_approved", "fulfillment_created", "order_fulfilled", "order_updated"]

    stub.answer(
        "transaction_charge_requested",
        (200, {"pspReference": "c1", "result": "CHARGE_SUCCESS", "amount": 100.0}),
    )
    saleor.request_action(txn, "CHARGE", "100")
    assert await step() == ["order_paid", "order_updated", "transaction_charge_requested"]
    saleor.return_products(order.id, {shipped.line_ids[sneakers]: 1})
    assert await step() == ["order_updated"]
    grant = saleor.grant_refund(order.id, txn, {sneakers: (1, "too small")}, reason="returned sneakers")
    assert await step() == []
    stub.answer(
        "transaction_refund_requested",
        (200, {"pspReference": "r1", "result": "REFUND_SUCCESS", "amount": 100.0}),
    )
    saleor.request_refund_for_granted_refund(grant)
    assert await step() == ["order_refunded", "order_updated", "transaction_refund_requested"]
    stub.answer(
        "transaction_cancelation_requested",
        (200, {"pspReference": "x1", "result": "CANCEL_SUCCESS", "amount": 10.0}),
    )
    saleor.request_action(txn, "CANCEL")
    assert await step() == ["order_updated", "transaction_cancelation_requested"]

    for event, capture in [
        ("transaction_charge_requested", "0011_transaction_charge_requested.raw"),
        ("transaction_refund_requested", "0015_transaction_refund_requested.raw"),
        ("transaction_cancelation_requested", "0018_transaction_cancelation_requested.raw"),
    ]:
        [received] = stub.got(event)
        real = _capture(capture)
        assert shape(received.payload) == shape(real), event
        assert _ledger(received.payload) == _ledger(real), event
        assert received.payload["action"] == real["action"], event
        fulfillments = received.payload["transaction"]["order"]["fulfillments"]
        real_fulfillments = real["transaction"]["order"]["fulfillments"]
        assert [(f["fulfillmentOrder"], f["status"]) for f in fulfillments] == [
            (f["fulfillmentOrder"], f["status"]) for f in real_fulfillments
        ], event
    refund = stub.got("transaction_refund_requested")[0].payload["grantedRefund"]
    real_refund = _capture("0015_transaction_refund_requested.raw")["grantedRefund"]
    keys = ("amount", "reason", "shippingCostsIncluded", "status")
    assert {k: refund[k] for k in keys} == {k: real_refund[k] for k in keys}
    assert refund["lines"][0]["reason"] == "too small" and refund["lines"][0]["quantity"] == 1

    final = saleor.transaction(txn)
    assert (final.authorized, final.charged, final.refunded, final.canceled) == (0, 100, 100, 10)
    assert saleor.granted_refund(grant)["status"] == "SUCCESS"
    assert saleor.order(order.id)["status"] == "PARTIALLY_RETURNED"


# -- order lifecycle facts (saleor-observed.md, Saleor's order/actions.py) ---------------------


async def test_same_item_in_two_parcels_the_unit_of_parcel_2_returned(saleor: FakeSaleor) -> None:
    # Seen on 3.23.28: parcel 2's fulfillment disappears, parcel 1 stays FULFILLED with 1, a
    # new RETURNED fulfillment holds 1 and names the order line only.
    order = saleor.create_order(lines=[("TSHIRT", "T-shirt", 2, "30.00", "0.25")])
    first = saleor.fulfill(order.id, {order.line(0): 1})
    second = saleor.fulfill(order.id, {order.line(0): 1})
    returned = saleor.return_products(order.id, {second.line_ids[order.line(0)]: 1})
    data = saleor.order(order.id)
    assert [(f["id"], f["status"], [ln["quantity"] for ln in f["lines"]]) for f in data["fulfillments"]] == [
        (first.id, "FULFILLED", [1]),
        (returned.id, "RETURNED", [1]),
    ]
    assert data["fulfillments"][1]["lines"][0]["orderLine"]["id"] == order.line(0)
    assert data["lines"][0]["quantityFulfilled"] == 2 and data["status"] == "PARTIALLY_RETURNED"
    with pytest.raises(SaleorError) as error:  # the deleted fulfillment's line is gone too
        saleor.return_products(order.id, {second.line_ids[order.line(0)]: 1})
    assert error.value.code == "NOT_FOUND"


async def test_fulfillment_cancel_puts_the_units_back_and_says_so(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    kept = saleor.fulfill(order.id, {order.line(0): 1})
    parcel = saleor.fulfill(order.id, {order.line(1): 1, order.line(2): 1}, tracking_number="DHL-1")
    await saleor.deliver_pending()
    saleor.cancel_fulfillment(parcel.id)
    assert [a.event_type for a in await saleor.deliver_pending()] == ["FULFILLMENT_CANCELED", "ORDER_UPDATED"]
    [payload] = [r.payload for r in stub.got("fulfillment_canceled")]
    assert payload["fulfillment"]["id"] == parcel.id and payload["fulfillment"]["status"] == "CANCELED"
    data = saleor.order(order.id)
    assert [(f["id"], f["status"]) for f in data["fulfillments"]] == [
        (kept.id, "FULFILLED"),
        (parcel.id, "CANCELED"),  # stays on the order, with its lines
    ]
    assert data["fulfillments"][1]["lines"] and data["fulfillments"][1]["trackingNumber"] == "DHL-1"
    assert [line["quantityFulfilled"] for line in data["lines"]] == [1, 0, 0]
    assert data["status"] == "PARTIALLY_FULFILLED"
    with pytest.raises(SaleorError) as error:
        saleor.cancel_fulfillment(parcel.id)
    assert error.value.code == "CANNOT_CANCEL_FULFILLMENT"
    again = saleor.fulfill(order.id, {order.line(1): 1, order.line(2): 1})  # may ship again
    assert again.id != parcel.id and saleor.order(order.id)["status"] == "FULFILLED"


async def test_order_cancel_is_refused_while_goods_are_out_and_sends_no_transaction_request(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    parcel = saleor.fulfill(order.id, {order.line(0): 1, order.line(1): 1})
    cancelled = saleor.fulfill(order.id, {order.line(2): 1})
    saleor.cancel_fulfillment(cancelled.id)
    await saleor.deliver_pending()
    with pytest.raises(SaleorError) as error:  # a FULFILLED fulfillment blocks it
        saleor.cancel_order(order.id)
    assert (error.value.code, error.value.field) == ("CANNOT_CANCEL_ORDER", "order")
    assert not saleor.pending()

    saleor.return_products(order.id, {fl: 1 for fl in parcel.line_ids.values()})
    await saleor.deliver_pending()
    saleor.cancel_order(order.id)  # only CANCELED and RETURNED fulfillments are left
    sent = [a.event_type for a in await saleor.deliver_pending()]
    assert sent == ["ORDER_CANCELLED", "ORDER_UPDATED"]
    [payload] = [
        r.payload for r in stub.received if r.payload and r.payload["__typename"] == "OrderCancelled"
    ]
    assert payload["order"]["id"] == order.id and payload["order"]["status"] == "CANCELED"
    assert payload["issuingPrincipal"]["__typename"] == "User"
    assert stub.got("transaction_cancelation_requested") == []
    view = saleor.transaction(txn)
    assert view.authorized == Decimal("210.00") and not view.canceled and not view.cancel_pending
    assert view.of_type("CANCEL_REQUEST") == []
    assert saleor.order(order.id)["status"] == "CANCELED"
    with pytest.raises(SaleorError, match="CANNOT_CANCEL_ORDER"):
        saleor.cancel_order(order.id)


async def test_order_cancel_before_anything_shipped(saleor: FakeSaleor) -> None:
    order = captured_order(saleor)
    saleor.cancel_order(order.id)
    assert saleor.order(order.id)["status"] == "CANCELED"


GIFT_CARDS = """query($id: ID!) { order(id: $id) { total { gross { amount } }
  giftCards { id last4CodeChars
    used: events(filter: {type: USED_IN_ORDER, orders: [$id]}) { type orderId
      balance { currentBalance { amount currency } oldCurrentBalance { amount currency } } }
    all: events { type } } } }"""


async def test_gift_cards_pay_part_of_the_order_and_show_what_they_paid(
    saleor: FakeSaleor, app: InstalledApp
) -> None:
    order = saleor.create_order(
        lines=[("SKU", "Boots", 2, "90.00", "0.25")],
        shipping=("10.00", "0.25"),
        gift_cards=[("GIFT-AAAA-1111", "25.00"), ("GIFT-BBBB-2222", "30.00")],
    )
    assert saleor.gift_card_total(order.id) == Decimal("55.00")  # the transaction covers 135.00
    status, body = await gql(saleor, GIFT_CARDS, {"id": order.id}, app.token)  # MANAGE_ORDERS only
    assert status == 200 and "errors" not in body, body
    data = body["data"]["order"]
    assert data["total"]["gross"]["amount"] == 190.0  # the order total is not reduced
    assert [(c["id"], c["last4CodeChars"]) for c in data["giftCards"]] == [
        (order.gift_card_ids[0], "1111"),
        (order.gift_card_ids[1], "2222"),
    ]
    first, second = data["giftCards"]
    assert first["used"] == [
        {
            "type": "USED_IN_ORDER",
            "orderId": order.id,
            "balance": {
                "currentBalance": {"amount": 0.0, "currency": "EUR"},
                "oldCurrentBalance": {"amount": 25.0, "currency": "EUR"},
            },
        }
    ]
    assert second["used"][0]["balance"]["oldCurrentBalance"]["amount"] == 30.0
    assert second["used"][0]["balance"]["currentBalance"]["amount"] == 0.0
    assert first["all"] == [{"type": "USED_IN_ORDER"}]  # ISSUED needs MANAGE_GIFT_CARD

    other = captured_order(saleor)
    _, body = await gql(saleor, GIFT_CARDS, {"id": other.id}, app.token)
    assert body["data"]["order"]["giftCards"] == []


async def test_a_gift_card_pays_at_most_the_total_and_a_card_left_over_is_not_linked(
    saleor: FakeSaleor, app: InstalledApp
) -> None:
    order = saleor.create_order(
        lines=[("SKU", "Socks", 1, "20.00")],
        gift_cards=[("GIFT-CCCC-3333", "50.00"), ("GIFT-DDDD-4444", "10.00")],
    )
    assert saleor.gift_card_total(order.id) == Decimal("20.00") and len(order.gift_card_ids) == 1
    query = """query($id: ID!, $other: ID!) { order(id: $id) { giftCards {
      mine: events(filter: {orders: [$id]}) {
        balance { currentBalance { amount } oldCurrentBalance { amount } } }
      elsewhere: events(filter: {orders: [$other]}) { type } } } }"""
    other = captured_order(saleor)
    _, body = await gql(saleor, query, {"id": order.id, "other": other.id}, app.token)
    [card] = body["data"]["order"]["giftCards"]
    assert card["mine"] == [
        {"balance": {"currentBalance": {"amount": 30.0}, "oldCurrentBalance": {"amount": 50.0}}}
    ]
    assert card["elsewhere"] == []


async def test_a_capped_grant_still_uses_up_its_lines(saleor: FakeSaleor, app: InstalledApp) -> None:
    # Observed: 110.00 granted for lines worth 170.00 when 110.00 had been charged.
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 110)
    grant = saleor.grant_refund(order.id, txn, {order.line(1): 1, order.line(2): 1})
    view = saleor.granted_refund(grant)
    assert view["amount"] == Decimal("110.00") and view["lines"] == {order.line(1): 1, order.line(2): 1}
    with pytest.raises(SaleorError) as error:
        saleor.grant_refund(order.id, txn, {order.line(2): 1})
    assert error.value.code == "QUANTITY_GREATER_THAN_AVAILABLE"
    assert saleor.order(order.id)["totalGrantedRefund"]["amount"] == 110.0


async def test_line_grant_refund_request_carries_the_grant(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 210)
    grant = saleor.grant_refund(order.id, txn, {order.line(0): 1}, include_shipping=True, reason="return")
    stub.answer("transaction_refund_requested", (200, {"pspReference": "r-1"}))
    request = saleor.request_refund_for_granted_refund(grant)
    assert "TRANSACTION_REFUND_REQUESTED" in [a.event_type for a in await saleor.deliver_pending()]
    [payload] = [r.payload for r in stub.got("transaction_refund_requested")]
    assert payload["action"] == {"actionType": "REFUND", "amount": 40.0, "currency": "EUR"}
    assert payload["issuingPrincipal"] is None and "errors" not in payload
    granted = payload["grantedRefund"]
    assert granted["id"] == grant and granted["amount"]["amount"] == 40.0
    assert granted["shippingCostsIncluded"] is True and granted["reason"] == "return"
    assert [(ln["quantity"], ln["orderLine"]["id"]) for ln in granted["lines"]] == [(1, order.line(0))]
    [event] = saleor.transaction(txn).of_type("REFUND_REQUEST")
    assert event.id == request and event.created_by is None and event.psp_reference == "r-1"
    assert saleor.granted_refund(grant)["status"] == "PENDING"


async def test_amount_only_refund_has_no_grant_and_carries_saleors_error(
    saleor: FakeSaleor, stub: StubApp, app: InstalledApp
) -> None:
    order = captured_order(saleor)
    txn = saleor.create_transaction(order.id, app, "klarna-order-123", "210.00")
    await report(saleor, app.token, txn, "CHARGE_SUCCESS", "cap-1", 100)
    stub.answer("transaction_refund_requested", (200, {"pspReference": "r-1", "result": "REFUND_SUCCESS"}))
    saleor.request_action(txn, "REFUND", "12.50")
    await saleor.deliver_pending()
    [payload] = [r.payload for r in stub.got("transaction_refund_requested")]
    assert payload["grantedRefund"] is None
    assert payload["action"] == {"actionType": "REFUND", "amount": 12.5, "currency": "EUR"}
    assert [e["message"] for e in payload["errors"]] == [
        "Cannot return null for non-nullable field OrderGrantedRefund.amount."
    ]
    assert saleor.transaction(txn).refunded == Decimal("12.50")
