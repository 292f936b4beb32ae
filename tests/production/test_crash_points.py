"""kill -9 at every named crash point (plugin/service/crashpoints.py), then a restart on the
same database: the order converges, no provider write is repeated, Saleor sees each
outcome once. The worker is a real `kom worker` process; SIGKILL leaves it no last word.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, inspect, select

from plugin.service.crashpoints import POINTS
from plugin.store import schema
from plugin.store import tables as t
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from tests.e2e.harness import SECRET, World, world
from tests.production.processes import KILLED, run_kom, run_worker

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
LEASE = 1.0  # short, so the restart need not wait long for the dead worker's lease


def worker_env_for(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOM_")}
    return {**env, "KOM_DATABASE_URL": database_url, "KOM_SECRET_KEY": SECRET}


def posts(w: World, suffix: str) -> list[object]:
    """Every write the sandbox received to ``suffix`` (answered, refused, replayed alike)."""
    return [r for r in w.sandbox.request_log() if r.method == "POST" and r.path.endswith(suffix)]


def executed(w: World, suffix: str) -> int:
    return sum(
        1 for r in w.sandbox.request_log() if r.path.endswith(suffix) and r.status < 300 and not r.replayed
    )


def seen_once(w: World, transaction: str) -> Counter[tuple[str, str]]:
    outcomes = ("CHARGE_SUCCESS", "REFUND_SUCCESS", "REFUND_FAILURE", "CANCEL_SUCCESS", "CANCEL_FAILURE")
    events = w.saleor.transaction(transaction).events
    return Counter((e.type, e.psp_reference) for e in events if e.type in outcomes)


async def crash_and_restart(w: World, logs: Path, point: str, phase: str) -> None:
    await w.saleor.deliver_pending()  # the hints are recorded; no worker ran yet
    code = await run_worker(w, logs, f"{phase}-killed", crash_at=point, KOM_LEASE_SECONDS=str(LEASE))
    assert code == KILLED, f"{phase}: the worker never reached {point} (exit {code})"
    await asyncio.sleep(LEASE + 0.3)
    assert await run_worker(w, logs, f"{phase}-restarted", KOM_LEASE_SECONDS=str(LEASE)) == 0
    await w.saleor.deliver_pending()


async def test_kill_at_each_crash_point_then_restart_converges_once(tmp_path: Path) -> None:
    """One world per crash point, side by side (each waits mostly for its processes)."""
    points = [p for p in POINTS if p != "mid-migration"]
    async with contextlib.AsyncExitStack() as stack:
        worlds = []
        for point in points:  # one at a time: opening a store migrates it (Alembic is not re-entrant)
            (tmp_path / point).mkdir()
            worlds.append(await stack.enter_async_context(world(tmp_path / point)))
        results = await asyncio.gather(
            *(converges(p, w, tmp_path / p) for p, w in zip(points, worlds, strict=True)),
            return_exceptions=True,
        )
    failed = {p: repr(r) for p, r in zip(points, results, strict=True) if r is not None}
    assert failed == {}


async def converges(point: str, w: World, tmp_path: Path) -> None:
    await w.install()
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    await crash_and_restart(w, tmp_path, point, "captures")
    assert [c.captured_amount for c in w.klarna(order).captures] == [10000, 10000]
    assert len(posts(w, "/captures")) == 2  # not one write repeated, not even replayed
    charges = w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")
    assert sorted(e.psp_reference for e in charges) == sorted(c.capture_id for c in w.klarna(order).captures)

    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[0]: 1, order.lines[2]: 1})
    w.saleor.request_refund_for_granted_refund(grant)
    await crash_and_restart(w, tmp_path, point, "refunds")
    assert sorted(r.refunded_amount for r in w.klarna(order).refunds) == [3000, 10000]
    assert len(posts(w, "/refunds")) == 2
    (refunded,) = w.saleor.transaction(order.transaction).of_type("REFUND_SUCCESS")
    assert refunded.amount == Decimal("130.00")
    assert all(r["allocated"] for r in (await w.ledger(order))["refunds"])

    cancelled = await w.new_order(SEED)
    w.saleor.fulfill(cancelled.id, {cancelled.lines[0]: 1, cancelled.lines[1]: 1})
    await w.settle()
    w.saleor.request_action(cancelled.transaction, "CANCEL")
    await crash_and_restart(w, tmp_path, point, "cancel")
    assert executed(w, "/release-remaining-authorization") == 1  # a restart may only replay it
    assert w.klarna(cancelled).remaining_authorized_amount == 0
    (cancel,) = w.saleor.transaction(cancelled.transaction).of_type("CANCEL_SUCCESS")
    assert cancel.amount == Decimal("100.00")

    for transaction in (order.transaction, cancelled.transaction):
        assert set(seen_once(w, transaction).values()) == {1}
        assert not w.saleor.transaction(transaction).of_type("REFUND_FAILURE")
        assert not w.saleor.transaction(transaction).of_type("CANCEL_FAILURE")
    for job in await w.store.order_jobs(1):
        assert job.state == "in_sync", (job.platform_order_id, job.state, job.reason)


async def test_kill_mid_migration_then_restart_migrates_and_keeps_the_data(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'kom.db'}"
    store = await Store.open(database_url, SecretBox(SECRET), create=False)
    script = schema.ScriptDirectory.from_config(schema.alembic_config())
    before = script.get_revision(schema.head()).down_revision
    assert isinstance(before, str)
    try:
        await schema.upgrade(store.engine, before)
        saved = await store.save_installation(
            platform="saleor", api_url="https://x/graphql/", app_id="a", token="t", jwks={}
        )
        async with store.engine.begin() as conn:  # a report sent by a KOM from before the outbox
            await conn.execute(
                insert(t.reports).values(
                    installation_id=saved.id, psp_reference="cap-1", type="CHARGE_SUCCESS", amount=100,
                    message="sent", created_at=store.clock(),
                )
            )  # fmt: skip
    finally:
        await store.close()
    env = worker_env_for(database_url)

    killed = await run_kom(
        tmp_path, "migrate-killed", "migrate", env={**env, "KOM_CRASH_AT": "mid-migration"}
    )
    assert killed == KILLED
    half = await Store.open(database_url, SecretBox(SECRET), create=False)
    try:
        assert (await half.schema_status()).current == before  # half applied, the revision not moved
        async with half.engine.connect() as conn:
            assert await conn.run_sync(lambda c: inspect(c).has_table("outcomes"))
    finally:
        await half.close()

    assert await run_kom(tmp_path, "migrate-restarted", "migrate", env=env) == 0
    assert await run_kom(tmp_path, "worker", "worker", "--once", env=env) == 0
    store = await Store.open(database_url, SecretBox(SECRET), create=False)
    try:
        assert (await store.schema_status()).up_to_date
        async with store.engine.connect() as conn:
            assert await conn.run_sync(schema.compare) == []
            rows = (await conn.execute(select(t.reports.c.psp_reference, t.reports.c.state))).all()
        assert [tuple(r) for r in rows] == [("cap-1", "sent")]  # kept, and known to be sent
    finally:
        await store.close()
