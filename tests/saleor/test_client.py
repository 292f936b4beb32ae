"""SaleorClient against a small, stateful GraphQL stand-in on httpx.MockTransport.

Only what the client's own behaviour needs (app, order, report, orders paging, JWKS); the
full fake Saleor lives in tests/fakes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import OperationDefinitionNode, parse

from adapters.saleor.client import OrderNotFound, SaleorClient, SaleorError
from adapters.saleor.snapshot import SnapshotError, order_snapshot

API = "https://shop.example.com/graphql/"
TOKEN = "app-token-5up3r-s3cr3t"
APP = "QXBwOjQy"
T0 = datetime(2026, 8, 1, tzinfo=UTC)

Override = Callable[[httpx.Request], httpx.Response]


def sample_order(order_id: str = "T3JkZXI6MQ==") -> dict[str, Any]:
    money = {"amount": 59.99, "currency": "EUR"}
    return {
        "id": order_id,
        "number": "7",
        "created": "2026-08-01T10:00:00+00:00",
        "status": "UNFULFILLED",
        "channel": {"slug": "eu", "currencyCode": "EUR"},
        "total": {"currency": "EUR", "gross": money},
        "lines": [
            {
                "id": "L1",
                "productName": "Shirt",
                "variantName": "",
                "productSku": "S-1",
                "quantity": 1,
                "taxRate": 0.19,
                "isShippingRequired": True,
                "isGift": False,
                "unitPrice": {"gross": money},
                "undiscountedUnitPrice": {"gross": money},
                "totalPrice": {"gross": money, "tax": {"amount": 9.58, "currency": "EUR"}},
            }
        ],
        "shippingPrice": {
            "gross": {"amount": 0.0, "currency": "EUR"},
            "tax": {"amount": 0.0, "currency": "EUR"},
        },
        "shippingTaxRate": 0.0,
        "shippingMethodName": None,
        "fulfillments": [],
        "transactions": [
            {
                "id": "VHJhbnNhY3Rpb25JdGVtOjE=",
                "pspReference": "klarna-1",
                "createdBy": {"__typename": "App", "id": APP},
                "authorizedAmount": money,
                "chargedAmount": {"amount": 0.0, "currency": "EUR"},
                "refundedAmount": {"amount": 0.0, "currency": "EUR"},
                "events": [],
            }
        ],
    }


class FakeSaleor:
    """Answers KOM's operations by name; remembers reported events like Saleor does."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.orders = {"T3JkZXI6MQ==": sample_order()}
        self.updated = [(f"T3JkZXI6{i}", T0 + timedelta(minutes=i)) for i in range(250)]
        self.events: dict[tuple[str, str, str], str | None] = {}
        self.override: Override | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.override is not None:
            return self.override(request)
        if request.method == "GET" and request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json={"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"errors": [{"message": "Invalid token."}]})
        body = json.loads(request.content)
        (operation,) = parse(body["query"]).definitions
        assert isinstance(operation, OperationDefinitionNode) and operation.name is not None
        variables = body.get("variables") or {}
        data = getattr(self, f"op_{operation.name.value}")(variables)
        return httpx.Response(200, json={"data": data})

    def op_AppId(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"app": {"id": APP}}

    def op_Order(self, variables: dict[str, Any]) -> dict[str, Any]:
        return {"order": self.orders.get(variables["id"])}

    def op_TransactionEventReport(self, v: dict[str, Any]) -> dict[str, Any]:
        key = (v["id"], v["type"], v["pspReference"])
        if key in self.events:
            if self.events[key] != v["amount"]:
                error = {
                    "field": "amount",
                    "message": "already exists with different amount",
                    "code": "INCORRECT_DETAILS",
                }
                return {
                    "transactionEventReport": {
                        "alreadyProcessed": False,
                        "transactionEvent": None,
                        "errors": [error],
                    }
                }
            return {
                "transactionEventReport": {
                    "alreadyProcessed": True,
                    "transactionEvent": {"id": "E1"},
                    "errors": [],
                }
            }
        self.events[key] = v["amount"]
        return {
            "transactionEventReport": {
                "alreadyProcessed": False,
                "transactionEvent": {"id": "E1"},
                "errors": [],
            }
        }

    def op_RecentOrders(self, v: dict[str, Any]) -> dict[str, Any]:
        since = datetime.fromisoformat(v["since"])
        matching = [order_id for order_id, updated in self.updated if updated >= since]
        start = int(v["after"] or 0)
        page = matching[start : start + min(v["first"], 100)]
        end = start + len(page)
        return {
            "orders": {
                "edges": [{"node": {"id": order_id}} for order_id in page],
                "pageInfo": {"hasNextPage": end < len(matching), "endCursor": str(end)},
            }
        }


@pytest.fixture
def fake() -> FakeSaleor:
    return FakeSaleor()


@pytest.fixture
async def http(fake: FakeSaleor) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        yield client


@pytest.fixture
def saleor(http: httpx.AsyncClient) -> SaleorClient:
    return SaleorClient(API, TOKEN, http, timeout=5)


async def test_app_id_uses_the_bearer_token(saleor: SaleorClient, fake: FakeSaleor) -> None:
    assert await saleor.app_id() == APP
    (request,) = fake.requests
    assert request.method == "POST" and str(request.url) == API
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_fetch_jwks_from_the_api_origin_without_token(saleor: SaleorClient, fake: FakeSaleor) -> None:
    jwks = await saleor.fetch_jwks()
    assert jwks["keys"][0]["kid"] == "k1"
    (request,) = fake.requests
    assert str(request.url) == "https://shop.example.com/.well-known/jwks.json"
    assert "Authorization" not in request.headers


@pytest.mark.parametrize(
    "response",
    [httpx.Response(404), httpx.Response(200, text="<html>"), httpx.Response(200, json={"nope": 1})],
)
async def test_fetch_jwks_failures(saleor: SaleorClient, fake: FakeSaleor, response: httpx.Response) -> None:
    fake.override = lambda _: response
    with pytest.raises(SaleorError, match="JWKS"):
        await saleor.fetch_jwks()


async def test_order_amounts_arrive_as_decimals(saleor: SaleorClient) -> None:
    order = await saleor.order("T3JkZXI6MQ==")
    assert order["total"]["gross"]["amount"] == Decimal("59.99")
    assert isinstance(order["lines"][0]["taxRate"], Decimal)
    snap = order_snapshot(order, app_id=APP)
    assert snap.order.lines[0].total_amount == 5999 and snap.order.lines[0].tax_rate == 1900
    assert snap.provider_order_id == "klarna-1"


def answer_with(text: str) -> Override:
    """The order query answered with this exact JSON text (json.dumps would go through float)."""
    return lambda _: httpx.Response(200, content=text.encode(), headers={"Content-Type": "application/json"})


def order_text(amount: str) -> str:
    return json.dumps({"data": {"order": sample_order()}}).replace('"amount": 59.99', f'"amount": {amount}')


async def test_order_amounts_never_pass_through_float(saleor: SaleorClient, fake: FakeSaleor) -> None:
    # As floats, 90071992547409.93 reads as ...09.94 and 19.999999999999999 as 20.0.
    fake.override = answer_with(order_text("90071992547409.93"))
    order = await saleor.order("T3JkZXI6MQ==")
    assert order["total"]["gross"]["amount"] == Decimal("90071992547409.93")
    fake.override = answer_with(order_text("19.999999999999999"))
    order = await saleor.order("T3JkZXI6MQ==")
    assert order["lines"][0]["totalPrice"]["gross"]["amount"] == Decimal("19.999999999999999")
    with pytest.raises(SnapshotError, match="decimal places"):  # refused, not rounded to 20.00
        order_snapshot(order, app_id=APP)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_an_answer_with_nan_is_refused(saleor: SaleorClient, fake: FakeSaleor, constant: str) -> None:
    fake.override = answer_with(order_text(constant))
    with pytest.raises(SaleorError, match="JSON"):
        await saleor.order("T3JkZXI6MQ==")


async def test_unknown_order(saleor: SaleorClient) -> None:
    with pytest.raises(OrderNotFound):
        await saleor.order("T3JkZXI6OTk=")


async def test_report_is_idempotent_like_saleor(saleor: SaleorClient, fake: FakeSaleor) -> None:
    report = {
        "transaction_id": "VHJhbnNhY3Rpb25JdGVtOjE=",
        "type": "CHARGE_SUCCESS",
        "psp_reference": "cap-1",
        "message": "Captured parcel 1",
        "external_url": "https://portal.klarna.com/orders/klarna-1",
    }
    first = await saleor.report_transaction_event(
        **report, amount=Decimal("59.99"), available_actions=["REFUND"]
    )
    assert (first.already_processed, first.errors) == (False, [])
    again = await saleor.report_transaction_event(**report, amount=Decimal("59.99"))
    assert again.already_processed is True
    clash = await saleor.report_transaction_event(**report, amount=Decimal("10.00"))
    assert [error.code for error in clash.errors] == ["INCORRECT_DETAILS"]
    sent = json.loads(fake.requests[0].content)["variables"]
    assert sent["amount"] == "59.99"  # exact decimal text; Saleor's Decimal scalar parses str(value)
    assert sent["type"] == "CHARGE_SUCCESS" and sent["availableActions"] == ["REFUND"]


async def test_recent_orders_pages_through(saleor: SaleorClient, fake: FakeSaleor) -> None:
    ids = await saleor.recent_orders(T0 + timedelta(minutes=10))
    assert ids == [order_id for order_id, _ in fake.updated[10:]]
    assert len(fake.requests) == 3  # 240 orders, 100 per page
    assert await saleor.recent_orders(T0, first=500, limit=150) == [o for o, _ in fake.updated[:150]]
    with pytest.raises(ValueError):
        await saleor.recent_orders(datetime(2026, 1, 1))


async def test_concurrent_calls_share_one_http_client(saleor: SaleorClient, fake: FakeSaleor) -> None:
    results = await asyncio.gather(*(saleor.app_id() for _ in range(5)), saleor.order("T3JkZXI6MQ=="))
    assert results[:5] == [APP] * 5 and len(fake.requests) == 6


def _echo_token(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"errors": [{"message": f"bad token {request.headers['Authorization']}"}]}
    )


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            lambda _: httpx.Response(200, json={"errors": [{"message": "Permission denied"}]}),
            "Permission denied",
        ),
        (lambda _: httpx.Response(401, json={"errors": [{"message": "Invalid token."}]}), "Invalid token"),
        (lambda _: httpx.Response(502, text="Bad gateway"), "502"),
        (lambda _: httpx.Response(200, text="not json"), "JSON"),
        (lambda _: httpx.Response(200, json={"data": {"app": None}}), "app token"),
        (_echo_token, "bad token"),
        (_timeout, "ReadTimeout|timed out"),
        (_refused, "refused"),
    ],
)
async def test_failures_are_saleor_errors_without_the_token(
    saleor: SaleorClient, fake: FakeSaleor, override: Override, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.override = override
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SaleorError, match=message) as info:
        await saleor.app_id()
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(saleor)


async def test_slow_answer_hits_the_client_timeout(fake: FakeSaleor) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return httpx.Response(200, json={"data": {"app": {"id": APP}}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        with pytest.raises(SaleorError, match=r"within 0\.05 s"):
            await SaleorClient(API, TOKEN, http, timeout=0.05).app_id()


async def test_injected_gql_transport(fake: FakeSaleor, http: httpx.AsyncClient) -> None:
    transport = HTTPXAsyncTransport(url=API, transport=httpx.MockTransport(fake.handle))
    client = SaleorClient(API, TOKEN, http, transport=transport)
    assert list(await asyncio.gather(client.app_id(), client.app_id())) == [APP, APP]
    assert len(fake.requests) == 2


def test_api_url_must_be_absolute(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError):
        SaleorClient("/graphql/", TOKEN, http)
