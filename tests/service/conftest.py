"""The Order Management sandbox on a real loopback socket, and KOM's real provider for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.provider import KlarnaProvider
from adapters.klarna.sandbox import DEMO_API_KEY, SandboxState, create_app
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.domain.snapshot import Order


@dataclass
class Sandbox:
    state: SandboxState
    base_url: str
    http: httpx.AsyncClient

    def provider(self, attempts: int = 4) -> KlarnaProvider:
        async def no_sleep(_: float) -> None:
            return None

        retry = RetryPolicy(max_attempts=attempts, sleep=no_sleep)
        client = OrderManagementClient(
            base_url=self.base_url, api_key=DEMO_API_KEY, http_client=self.http, retry=retry
        )
        return KlarnaProvider(client)

    async def new_order(self, order: Order) -> str:
        amount = sum(line.total_amount for line in order.lines) + (
            order.shipping.amount if order.shipping else 0
        )
        response = await self.http.post(
            f"{self.base_url}/_sandbox/orders",
            json={"purchase_currency": order.currency, "order_amount": amount},
        )
        assert response.status_code == 201
        return str(response.json()["order_id"])

    async def ledger(self, order_id: str) -> dict[str, object]:
        body: dict[str, object] = (
            await self.http.get(f"{self.base_url}/_sandbox/orders/{order_id}/ledger")
        ).json()
        return body

    def writes(self, suffix: str) -> list[object]:
        return [r for r in self.state.request_log() if r.method == "POST" and r.path.endswith(suffix)]


@pytest.fixture
def served() -> Iterator[tuple[SandboxState, str]]:
    state = SandboxState()
    with serve_in_thread(create_app(state)) as base_url:
        yield state, base_url


@pytest.fixture
async def sandbox(served: tuple[SandboxState, str]) -> AsyncIterator[Sandbox]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield Sandbox(served[0], served[1], http)
