"""The Store on real databases (SQLite and PostgreSQL, see conftest.py): secrets at rest,
settings fallback, the order queue, the schema and its migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from plugin.store.secrets import SecretBox, SecretError
from plugin.store.store import ChannelSettings, RequestConflict, Store

KEY = "test-secret-key-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, SecretBox(KEY), clock)
    yield opened
    await opened.close()


async def install(store: Store, url: str = "https://shop.example/graphql/") -> int:
    saved = await store.save_installation(
        platform="saleor", api_url=url, app_id="QXBwOjE=", token="SECRET-TOKEN-123", jwks={"keys": []}
    )
    return saved.id


async def test_tokens_and_api_keys_are_encrypted_at_rest(store: Store) -> None:
    installation_id = await install(store)
    await store.save_settings(
        installation_id,
        ChannelSettings("", "klarna", "playground", "eu", "klarna_test_api_SECRETKEY", None, None),
    )
    async with store.engine.connect() as conn:
        raw = (await conn.execute(text("select * from installations, channel_settings"))).all()
    assert raw and all(isinstance(row.token, bytes) for row in raw)
    assert "SECRET-TOKEN-123" not in repr(raw) and "SECRETKEY" not in repr(raw)
    found = await store.installation(installation_id)
    assert found is not None and found.token == "SECRET-TOKEN-123"
    assert "SECRET" not in repr(found)
    settings = await store.settings_for(installation_id, "any")
    assert (
        settings is not None
        and settings.api_key == "klarna_test_api_SECRETKEY"
        and "SECRET" not in repr(settings)
    )


async def test_a_wrong_key_cannot_read_secrets(database_url: str, store: Store) -> None:
    await install(store)
    other = await Store.open(database_url, SecretBox("another-key-0123456789abcdef"))
    with pytest.raises(SecretError, match="KOM_SECRET_KEY"):
        await other.installation_by_url("https://shop.example/graphql/")
    await other.close()
    rotated = await Store.open(database_url, SecretBox(f"new-key-0123456789abcdef,{KEY}"))
    assert await rotated.installation_by_url("https://shop.example/graphql/") is not None
    await rotated.close()


async def test_reregistering_replaces_the_installation(store: Store) -> None:
    first = await install(store)
    again = await store.save_installation(
        platform="saleor",
        api_url="https://shop.example/graphql/",
        app_id="QXBwOjI=",
        token="NEW",
        jwks={"keys": [1]},
    )
    assert again.id == first and again.app_id == "QXBwOjI=" and again.token == "NEW"
    assert len(await store.installations()) == 1
    assert await store.delete_installation("https://shop.example/graphql/")
    assert await store.installations() == []


async def test_channel_settings_fall_back_to_the_default(store: Store) -> None:
    installation_id = await install(store)
    assert await store.settings_for(installation_id, "eu") is None
    await store.save_settings(
        installation_id, ChannelSettings("", "klarna", "playground", "eu", "k1", None, None)
    )
    await store.save_settings(
        installation_id, ChannelSettings("us", "kustom", "production", "eu", "k2", "u", None)
    )
    default = await store.settings_for(installation_id, "eu")
    special = await store.settings_for(installation_id, "us")
    assert default is not None and default.provider == "klarna"
    assert special is not None and special.provider == "kustom" and special.api_key == "k2"


async def test_claim_lease_finish(store: Store, clock: Clock) -> None:
    installation_id = await install(store)
    await store.touch_order(installation_id, "order-1")
    await store.touch_order(installation_id, "order-1")  # duplicate webhook
    job = await store.claim("w1", timedelta(seconds=60))
    assert job is not None and job.platform_order_id == "order-1"
    assert await store.claim("w2", timedelta(seconds=60)) is None  # leased
    assert await store.finish(job, state="in_sync")
    assert await store.claim("w2", timedelta(seconds=60)) is None  # nothing due
    found = await store.order_job(installation_id, "order-1")
    assert found is not None and found.state == "in_sync"


async def test_a_webhook_during_work_keeps_the_order_pending(store: Store) -> None:
    installation_id = await install(store)
    await store.touch_order(installation_id, "order-1")
    job = await store.claim("w1", timedelta(seconds=60))
    assert job is not None
    await store.touch_order(installation_id, "order-1")  # arrives while w1 works
    assert not await store.finish(job, state="in_sync")
    again = await store.claim("w1", timedelta(seconds=60))
    assert again is not None and again.id == job.id


async def test_an_expired_lease_is_taken_over(store: Store, clock: Clock) -> None:
    installation_id = await install(store)
    await store.touch_order(installation_id, "order-1")
    assert await store.claim("crashed", timedelta(seconds=60)) is not None
    clock.now += timedelta(seconds=61)
    job = await store.claim("w2", timedelta(seconds=60))
    assert job is not None and job.attempts == 2


async def test_retry_later_then_give_up(store: Store, clock: Clock) -> None:
    installation_id = await install(store)
    await store.touch_order(installation_id, "order-1")
    job = await store.claim("w1", timedelta(seconds=60))
    assert job is not None
    await store.retry_later(job, error="provider down", delay=timedelta(seconds=30), give_up=False)
    assert await store.claim("w1", timedelta(seconds=60)) is None
    clock.now += timedelta(seconds=31)
    job = await store.claim("w1", timedelta(seconds=60))
    assert job is not None
    await store.retry_later(job, error="provider down", delay=timedelta(seconds=30), give_up=True)
    parked = await store.order_job(installation_id, "order-1")
    assert parked is not None and parked.state == "needs_attention" and parked.reason == "provider down"
    assert await store.retry_now(installation_id, "order-1")
    assert await store.claim("w1", timedelta(seconds=60)) is not None


async def test_concurrent_claims_never_share_an_order(store: Store) -> None:
    installation_id = await install(store)
    for n in range(20):
        await store.touch_order(installation_id, f"order-{n}")
    claimed = await asyncio.gather(*(store.claim(f"w{n}", timedelta(seconds=60)) for n in range(30)))
    ids = [job.platform_order_id for job in claimed if job is not None]
    assert len(ids) == 20 and len(set(ids)) == 20


def request(clock: Clock, installation_id: int, **changes: object) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "installation_id": installation_id,
        "platform_order_id": "order-1",
        "kind": "refund",
        "request_id": "grant-1",
        "psp_reference": "kom-refund:grant-1:2026-11-21T12:00:00+00:00",
        "transaction_id": "tx-1",
        "created_at": clock.now,
        "body": {"amount": 100},
    }
    return {**kwargs, **changes}


async def test_requests_are_recorded_once(store: Store, clock: Clock) -> None:
    installation_id = await install(store)
    first = await store.record_request(**request(clock, installation_id))  # type: ignore[arg-type]
    second = await store.record_request(**request(clock, installation_id, body={"amount": 999}))  # type: ignore[arg-type]
    assert first == second and second.body == {"amount": 100} and second.transaction_id == "tx-1"
    assert await store.requests_for(installation_id, "order-1") == [first]


async def test_a_grant_requested_again_is_a_new_request(store: Store, clock: Clock) -> None:
    installation_id = await install(store)
    first = await store.record_request(**request(clock, installation_id))  # type: ignore[arg-type]
    await store.mark_done([first.id])
    later = clock.now + timedelta(minutes=5)
    again = await store.record_request(
        **request(clock, installation_id, psp_reference="kom-refund:grant-1:later", created_at=later)  # type: ignore[arg-type]
    )
    assert again.id != first.id and again.request_id == first.request_id and not again.done
    assert [r.done for r in await store.requests_for(installation_id, "order-1")] == [True, False]


async def test_an_order_with_two_payments_keeps_each_request_with_its_transaction(
    store: Store, clock: Clock
) -> None:
    installation_id = await install(store)
    for n in (1, 2):
        await store.record_request(
            **request(  # type: ignore[arg-type]
                clock,
                installation_id,
                kind="cancel",
                request_id=f"tx-{n}:cancel",
                psp_reference=f"kom-cancel:tx-{n}",
                transaction_id=f"tx-{n}",
            )
        )
    found = await store.requests_for(installation_id, "order-1", kind="cancel")
    assert [(r.request_id, r.transaction_id) for r in found] == [
        ("tx-1:cancel", "tx-1"),
        ("tx-2:cancel", "tx-2"),
    ]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({}, "this same refund request"),
        ({"psp_reference": "other", "request_id": "grant-9"}, "its transaction tx-1"),
        ({"psp_reference": "other", "transaction_id": "tx-9"}, "its refund grant-1"),
    ],
)
async def test_ids_reused_for_another_order_are_refused(
    store: Store, clock: Clock, changes: dict[str, object], words: str
) -> None:
    installation_id = await install(store)
    first = await store.record_request(**request(clock, installation_id))  # type: ignore[arg-type]
    with pytest.raises(RequestConflict, match=words) as refused:
        await store.record_request(**request(clock, installation_id, platform_order_id="order-2", **changes))  # type: ignore[arg-type]
    assert "order-1" in str(refused.value) and "order-2" in str(refused.value)
    assert await store.requests_for(installation_id, "order-2") == []
    assert await store.requests_for(installation_id, "order-1") == [first]


async def test_a_record_from_before_0003_is_still_the_same_request(store: Store, clock: Clock) -> None:
    # KOM used to answer a grant's request with "kom-refund:<grant>": a retry of that same
    # delivery (same grant and issuedAt) arriving after the upgrade is no new request.
    installation_id = await install(store)
    legacy = await store.record_request(**request(clock, installation_id, psp_reference="kom-refund:grant-1"))  # type: ignore[arg-type]
    assert await store.record_request(**request(clock, installation_id)) == legacy  # type: ignore[arg-type]


async def test_processes_claiming_at_once_never_share_an_order(database_url: str, store: Store) -> None:
    """Four Stores, each with its own engine and connections (as four worker processes would)."""
    installation_id = await install(store)
    for n in range(40):
        await store.touch_order(installation_id, f"order-{n}")
    others = [await Store.open(database_url, SecretBox(KEY), store.clock, create=False) for _ in range(4)]
    try:

        async def claim_all(worker: int) -> list[str]:
            mine = []
            while (job := await others[worker].claim(f"w{worker}", timedelta(seconds=60))) is not None:
                mine.append(job.platform_order_id)
            return mine

        claimed = await asyncio.gather(*(claim_all(n) for n in range(4)))
    finally:
        for other in others:
            await other.close()
    every = [order for mine in claimed for order in mine]
    assert sorted(every) == sorted(f"order-{n}" for n in range(40))  # each exactly once


async def test_hints_from_many_webhooks_at_once_are_all_recorded(database_url: str, store: Store) -> None:
    installation_id = await install(store)
    other = await Store.open(database_url, SecretBox(KEY), store.clock, create=False)
    try:
        await asyncio.gather(
            *(
                (store if n % 2 else other).touch_order(installation_id, f"order-{n % 25}", number=str(n))
                for n in range(200)
            )
        )
    finally:
        await other.close()
    jobs = await store.order_jobs(installation_id, limit=100)
    assert len(jobs) == 25 and sum(job.hints for job in jobs) == 200
    assert all(job.state == "pending" and job.due_at == store.clock() for job in jobs)
    assert all(job.due_at is not None and job.due_at.tzinfo is not None for job in jobs)


async def test_json_and_datetimes_round_trip(store: Store, clock: Clock) -> None:
    installation_id = await install(store)
    jwks = {"keys": [{"kid": "k", "n": "ü", "nested": [1, 2.5, None, True]}]}
    await store.update_jwks(installation_id, jwks)
    found = await store.installation(installation_id)
    assert found is not None and found.jwks == jwks and found.jwks_fetched_at == clock.now
    assert found.jwks_fetched_at.utcoffset() == timedelta(0)


async def test_sqlite_hint_writer_writes_what_the_upsert_writes(tmp_path: Path, clock: Clock) -> None:
    """SQLite hints go through a fast path (one statement per batch on its own connection);
    it must leave exactly the rows the SQLAlchemy upsert (the PostgreSQL path) leaves."""
    fast = await Store.open(f"sqlite:///{tmp_path / 'fast.db'}", SecretBox(KEY), clock)
    plain = await Store.open(f"sqlite:///{tmp_path / 'plain.db'}", SecretBox(KEY), clock)
    assert fast._hint_writer is not None
    await plain._hint_writer.close()  # type: ignore[union-attr]
    plain._hint_writer = None
    try:
        for store in (fast, plain):
            installation_id = await install(store)
            await store.touch_order(installation_id, "order-1", number="1001")
            job = await store.claim("w", timedelta(seconds=60))
            assert job is not None
            await store.retry_later(job, error="x", delay=timedelta(seconds=9), give_up=False)
            clock.now += timedelta(seconds=1)
            await asyncio.gather(
                store.touch_order(installation_id, "order-1"), store.touch_order(installation_id, "order-2")
            )
            clock.now -= timedelta(seconds=1)
        rows = []
        for store in (fast, plain):
            async with store.engine.connect() as conn:
                found = await conn.execute(
                    text(
                        "select platform_order_id, order_number, state, attempts, hints, due_at, created_at, "
                        "updated_at, lease_owner from orders order by platform_order_id"
                    )
                )
                rows.append([tuple(row) for row in found])
        assert rows[0] == rows[1]
        assert rows[0][0][1:5] == ("1001", "pending", 0, 2)
        job = await fast.order_job(1, "order-1")
        assert job is not None and job.due_at == clock.now + timedelta(seconds=1)
    finally:
        await fast.close()
        await plain.close()


async def test_a_request_recorded_under_the_long_psp_keeps_it(store: Store, clock: Clock) -> None:
    # Before short pspReferences KOM answered "kom-refund:<grant>@<issuedAt>": Saleor's
    # re-delivery of that request, now given a short pspReference, is the same record, and
    # its outcome is reported with the pspReference Saleor's REFUND_REQUEST event carries.
    installation_id = await install(store)
    old = "kom-refund:grant-1@2026-11-21T12:00:00+00:00"
    legacy = await store.record_request(**request(clock, installation_id, psp_reference=old))  # type: ignore[arg-type]
    again = await store.record_request(**request(clock, installation_id, psp_reference="kom-refund-1-ABCDEF"))  # type: ignore[arg-type]
    assert again == legacy and again.psp_reference == old
