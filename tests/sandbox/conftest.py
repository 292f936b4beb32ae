"""Shared fixtures: a controllable clock, a sandbox app and an authenticated in-process client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.klarna.sandbox import DEMO_API_KEY, SandboxApp, SandboxState, create_app

OM = "/ordermanagement/v1/orders"
AUTH = {"Authorization": f"Basic {DEMO_API_KEY}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    return SandboxState(clock)


@pytest.fixture
def app(state: SandboxState) -> SandboxApp:
    return create_app(state)


@pytest.fixture
async def client(app: SandboxApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://sandbox.test", headers=AUTH) as c:
        yield c


def line(reference: str, amount: int, name: str | None = None, **extra: object) -> dict[str, object]:
    """A physical order line of quantity 1 at 25 % tax."""
    tax = amount * 2500 // 12500
    return {
        "type": "physical",
        "reference": reference,
        "name": name or reference,
        "quantity": 1,
        "unit_price": amount,
        "total_amount": amount,
        "tax_rate": 2500,
        "total_tax_amount": tax,
        **extra,
    }


def assert_error(response: httpx.Response, status: int, code: str, *messages: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_messages", "correlation_id"}
    assert body["error_code"] == code
    if messages:
        assert body["error_messages"] == list(messages)
    assert uuid.UUID(body["correlation_id"]).version == 4


async def create_order(client: httpx.AsyncClient, amount: int = 20000, **extra: object) -> str:
    response = await client.post(
        "/_sandbox/orders", json={"purchase_currency": "EUR", "order_amount": amount, **extra}
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id
