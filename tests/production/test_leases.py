"""Leases that follow the worker: renewed while it works, so a short lease never lets a second
worker in on a live pass, and a dead worker's order is taken over within 30 s (issue 10, 6)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from adapters.klarna.sandbox import Fault
from plugin.composition import classify
from plugin.service.worker import Worker, WorkerConfig
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from tests.e2e.harness import SECRET, world
from tests.production.processes import KILLED, run_worker, start_worker

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]


def test_the_default_lease_lets_another_worker_take_over_within_30_seconds() -> None:
    lease = Settings().lease_seconds  # type: ignore[call-arg]
    config = WorkerConfig()
    assert lease == config.lease.total_seconds() == 20
    assert lease + config.idle_sleep < 30


async def test_a_pass_longer_than_the_lease_keeps_it(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.install()
        order = await w.new_order(SEED)
        w.fault(Fault.delayed(2.5, method="POST", path="/captures$"))  # a pass of ~2.5 s
        w.saleor.fulfill(order.id, {order.lines[0]: 1})
        await w.saleor.deliver_pending()
        config = WorkerConfig(lease=timedelta(seconds=0.6), idle_sleep=0.05)
        services = w.services()
        other_store = await Store.open(w.settings.database_url, SecretBox(SECRET), w.clock, create=False)
        try:
            busy = Worker(
                w.store,
                services.platform,
                services.provider,
                config=config,
                worker_id="busy",
                classify=classify,
            )
            other = Worker(
                other_store,
                services.platform,
                services.provider,
                config=config,
                worker_id="other",
                classify=classify,
            )
            first = asyncio.create_task(busy.run_once())
            await asyncio.sleep(0.2)
            tries = 0
            while not first.done():
                assert not await other.run_once(), (
                    "a second worker got the order while the first worked on it"
                )
                tries += 1
                await asyncio.sleep(0.1)
            assert await first and tries >= 15  # ~2.5 s: four leases long
        finally:
            await other_store.close()
        assert len(w.klarna(order).captures) == 1
        job = await w.store.order_job(1, order.id)
        assert job is not None and job.state == "in_sync"


async def test_a_killed_workers_order_is_taken_over_within_30_seconds(tmp_path: Path) -> None:
    """Default settings (20 s lease): kill -9 a `kom worker` mid-pass; another one finishes it."""
    async with world(tmp_path) as w:
        await w.install()
        order = await w.new_order(SEED)
        w.saleor.fulfill(order.id, {order.lines[0]: 1})
        w.saleor.fulfill(order.id, {order.lines[1]: 1})
        await w.saleor.deliver_pending()
        assert await run_worker(w, tmp_path, "killed", crash_at="provider-answered") == KILLED
        died = time.monotonic()
        assert len(w.klarna(order).captures) == 1  # the first capture happened, nothing recorded
        survivor = await start_worker(w, tmp_path, "survivor")
        try:
            while len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) < 2:
                assert time.monotonic() - died < 30, "the order was not taken over within 30 s"
                assert survivor.returncode is None, survivor.log.read_text()
                await asyncio.sleep(0.2)
            taken_over = time.monotonic() - died
        finally:
            await survivor.stop()
        assert taken_over < 30
        assert len(w.klarna(order).captures) == 2
        assert sum(1 for r in w.sandbox.request_log() if r.path.endswith("/captures")) == 2
