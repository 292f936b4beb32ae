"""A large plan runs off the event loop: other passes of the process keep running meanwhile.

The order is big enough that planning takes tens of milliseconds of CPU; a ticker coroutine
runs beside ``sync_order`` against the real sandbox. Planning happens between the provider
read and the first capture; the ticker must get the loop during that time (on the loop
itself it would get it not once). The bound is about the loop turning at all, not a timing.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace

from adapters.klarna.provider import KlarnaProvider
from plugin.domain.actions import CaptureAction
from plugin.domain.provider import ProviderOrder
from plugin.service import sync
from plugin.service.sync import sync_order
from tests.domain.large_orders import Shape, base_order, parcels
from tests.service.conftest import Sandbox


class Watched(KlarnaProvider):
    """The real provider, noting when the plan's window opens (read) and closes (first write)."""

    read_at: float | None = None
    first_write_at: float | None = None

    async def get_order(self, order_id: str) -> ProviderOrder:
        state = await super().get_order(order_id)
        self.read_at = time.monotonic()
        return state

    async def capture(self, order_id: str, action: CaptureAction) -> str:
        if self.first_write_at is None:
            self.first_write_at = time.monotonic()
        return await super().capture(order_id, action)


async def test_a_large_plan_leaves_the_event_loop_free(sandbox: Sandbox) -> None:
    shape = Shape(3000, 12, seed=3)
    rng = random.Random(shape.seed)
    order = base_order(shape, rng)
    order = replace(order, shipments=tuple(parcels(order, shape, rng)))
    assert sync._large(order, ProviderOrder("x", "AUTHORIZED", "EUR", 0, 0, 0, 0))
    klarna_id = await sandbox.new_order(order)
    provider = Watched(sandbox.provider()._client)
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.001)

    beside = asyncio.create_task(ticker())
    try:
        result = await sync_order(order, klarna_id, provider)
    finally:
        done.set()
        await beside
    assert len(result.done) == len(order.shipments)
    assert provider.read_at is not None and provider.first_write_at is not None
    during = [t for t in ticks if provider.read_at < t < provider.first_write_at]
    window = provider.first_write_at - provider.read_at
    assert len(during) >= 2, f"the loop turned {len(during)} times in a {window * 1000:.0f} ms plan"
