"""The worker keeps the authorization clock and adopts foreign captures (issue 10 item 10)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.harness import world
from tests.e2e.test_reconcile import SEED, at_klarna, sneakers_line


async def test_the_worker_warns_then_extends_an_expiring_authorization(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.install()
        settings = await w.store.settings_for(1, None)
        assert settings is not None
        order = await w.new_order(SEED)
        w.saleor.fulfill(order.id, {order.lines[0]: 1})
        await w.settle()
        rec = (await w.store.authorizations(1, [order.id]))[order.id]
        assert rec.state == "ok" and rec.unshipped_units == 2
        soon = (datetime.now(UTC) + timedelta(hours=20)).replace(microsecond=0)
        w.klarna(order).expires_at = soon
        await w.store.save_authorization(1, replace(rec, expires_at=soon))  # as if recorded days ago
        w.worker._last_sweep = None
        await w.worker.maybe_sweep()  # enqueues it
        await w.worker.drain()
        assert [f.kind for f in await w.store.findings(1, order.id)] == ["authorization_expiring"]
        await w.store.save_settings(1, replace(settings, extend_authorization=True))
        await w.store.retry_now(1, order.id)
        await w.worker.drain()
        assert w.klarna(order).expires_at > soon + timedelta(days=20)
        assert await w.store.findings(1, order.id) == []
        # adoption in the worker
        other = await w.new_order(SEED)
        w.saleor.fulfill(other.id, {other.lines[0]: 1, other.lines[1]: 1})
        await w.settle()
        w.saleor.fulfill(other.id, {other.lines[2]: 1})
        await at_klarna(
            w, other, "/captures", {"captured_amount": 10000, "order_lines": [sneakers_line("SNEAKERS/2")]}
        )
        await w.settle()
        job = await w.store.order_job(1, other.id)
        assert job is not None and job.state == "in_sync", job.reason
        assert len(w.klarna(other).captures) == 2
