"""The schema: Alembic migrations build exactly tables.py, on SQLite and PostgreSQL; an old or
missing schema is reported (and refused where KOM does not migrate by itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from plugin.store import schema
from plugin.store import tables as t
from plugin.store.secrets import SecretBox
from plugin.store.store import Store, async_url

KEY = "test-secret-key-0123456789abcdef"


async def test_migrations_build_exactly_the_tables(database_url: str) -> None:
    store = await Store.open(database_url, SecretBox(KEY))
    try:
        found = await store.schema_status()
        assert found.up_to_date and found.current == schema.head()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(schema.compare) == []
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert names == {*t.metadata.tables, "alembic_version"}
        assert (await store.migrate()).up_to_date  # again: nothing to do
    finally:
        await store.close()


async def test_an_empty_or_old_database_is_reported_not_touched(database_url: str) -> None:
    store = await Store.open(database_url, SecretBox(KEY), create=False)
    try:
        empty = await store.schema_status()
        assert empty.current is None and not empty.up_to_date
        assert "run `kom migrate`" in empty.describe()
        with pytest.raises(schema.SchemaOutOfDate, match="kom migrate"):
            await schema.require_current(store.engine)
        await schema.upgrade(store.engine, "0001")
        old = await store.schema_status()
        assert old.current == "0001" and "revision 0001" in old.describe()
        assert (await store.migrate()).up_to_date
        await schema.require_current(store.engine)
    finally:
        await store.close()


async def test_a_database_from_before_migrations_is_adopted(database_url: str) -> None:
    """KOM used to create its tables with create_all: such a database upgrades in place, data kept."""
    engine = create_async_engine(async_url(database_url))
    # The tables as create_all made them then: revision 0001, without Alembic's version table
    # (not today's tables.py, which later migrations extended).
    await schema.upgrade(engine, "0001")
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {schema.VERSION_TABLE}"))
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            t.installations.insert().values(
                platform="saleor", api_url="https://x/graphql/", app_id="a", token=b"k1", jwks={},
                jwks_fetched_at=now, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    await engine.dispose()
    store = await Store.open(database_url, SecretBox(KEY), create=False)
    try:
        assert (await store.schema_status()).current is None
        assert (await store.migrate()).up_to_date
        async with store.engine.connect() as conn:
            assert await conn.run_sync(schema.compare) == []
            assert (await conn.execute(text("select count(*) from installations"))).scalar() == 1
    finally:
        await store.close()


async def test_0003_keeps_the_requests_and_keys_them_by_psp_reference(database_url: str) -> None:
    engine = create_async_engine(async_url(database_url))
    await schema.upgrade(engine, "0002")
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            t.installations.insert().values(
                platform="saleor",
                api_url="https://x/graphql/",
                app_id="a",
                token=b"k1",
                jwks={},
                jwks_fetched_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            t.requests.insert().values(
                installation_id=1, platform_order_id="o-1", kind="refund", request_id="grant-1",
                psp_reference="kom-refund:grant-1", transaction_id="tx-1", body={"amount": 5},
                created_at=now, done=True,
            )
        )  # fmt: skip
    await engine.dispose()
    store = await Store.open(database_url, SecretBox(KEY))  # migrates on the spot, as `kom serve` does
    try:
        assert (await store.schema_status()).current == schema.head()  # 0003, and any later one
        async with store.engine.connect() as conn:
            assert await conn.run_sync(schema.compare) == []
        (kept,) = await store.requests_for(1, "o-1")
        assert (kept.psp_reference, kept.body, kept.done) == ("kom-refund:grant-1", {"amount": 5}, True)
        again = await store.record_request(
            installation_id=1, platform_order_id="o-1", kind="refund", request_id="grant-1",
            psp_reference="kom-refund:grant-1:later", transaction_id="tx-1", body={"amount": 5},
            created_at=now + timedelta(minutes=1),
        )  # fmt: skip
        assert again.id != kept.id  # the same grant requested again: allowed since 0003
    finally:
        await store.close()


async def test_queue_stats(database_url: str) -> None:
    clock_now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    store = await Store.open(database_url, SecretBox(KEY), lambda: clock_now)
    try:
        empty = await store.queue_stats()
        assert empty.counts == {} and empty.oldest_age(clock_now) == 0
        saved = await store.save_installation(
            platform="saleor", api_url="https://x/graphql/", app_id="a", token="t", jwks={}
        )
        for n in range(3):
            await store.touch_order(saved.id, f"order-{n}")
        job = await store.claim("w", timedelta(seconds=60))
        assert job is not None
        await store.finish(job, state="needs_attention", reason="x")
        stats = await store.queue_stats()
        assert stats.counts == {"pending": 2, "needs_attention": 1}
        assert stats.oldest_due_at == clock_now
        assert stats.oldest_age(clock_now + timedelta(seconds=90)) == 90
    finally:
        await store.close()


def test_the_alembic_command_line_config_points_at_the_migrations() -> None:
    ini = Path(schema.__file__).with_name("alembic.ini").read_text()
    assert "script_location = %(here)s/migrations" in ini
    assert schema.head() == sorted(p.name for p in schema.MIGRATIONS.glob("versions/0*.py"))[-1][:4]
