"""The store's outcome records, report outbox and lease renewal, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from plugin.service.ports import OutboxReport, TransactionReport
from plugin.service.records import Outcome
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

KEY = "test-secret-key-0123456789abcdef"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, SecretBox(KEY))
    try:
        await opened.save_installation(
            platform="saleor", api_url="https://x/graphql/", app_id="a", token="t", jwks={}
        )
        yield opened
    finally:
        await opened.close()


async def test_an_answer_once_recorded_stays(store: Store) -> None:
    async def record(status: str, provider_id: str | None = None, message: str | None = None) -> None:
        await store.record_outcome(
            1, "o-1", "k-1", Outcome("kom:s:1", "capture", status, 100, provider_id, message=message)
        )

    await record("started")
    await record("done", "cap-1")
    await record("started")  # a late re-plan must not forget the answer
    await record("done", "cap-other")  # nor may a second answer replace the first
    assert [(o.status, o.provider_id) for o in await store.outcomes(1, "k-1")] == [("done", "cap-1")]

    await store.record_outcome(1, "o-1", "k-1", Outcome("kom:s:2", "capture", "failed", 50, message="403"))
    await store.record_outcome(1, "o-1", "k-1", Outcome("kom:s:2", "capture", "started", 50))
    assert (await store.outcomes(1, "k-1"))[1].status == "failed"
    await store.record_outcome(1, "o-1", "k-1", Outcome("kom:s:2", "capture", "done", 50, "cap-2"))
    assert (await store.outcomes(1, "k-1"))[1].status == "done"  # found on the provider's record after all


async def test_the_outbox_keeps_the_first_wording_and_closes_requests_with_it(store: Store) -> None:
    request = await store.record_request(
        installation_id=1, platform_order_id="o-1", kind="refund", request_id="r-1",
        psp_reference="kom-refund:r-1", transaction_id="t-1", body={"id": "r-1"},
        created_at=datetime.now(UTC),
    )  # fmt: skip
    first = TransactionReport(
        "REFUND_SUCCESS", "kom-refund:r-1", 3000, "EUR", "Refunded €30.00 on invoice K-1"
    )
    await store.queue_reports(1, "o-1", [OutboxReport("t-1", first)], [request.id])
    again = TransactionReport(
        "REFUND_SUCCESS", "kom-refund:r-1", 3000, "EUR", "Refunded €30.00 on invoice abc"
    )
    await store.queue_reports(1, "o-1", [OutboxReport("t-1", again)], [])
    (queued,) = await store.order_reports(1, "o-1")
    assert (queued.state, queued.report, queued.transaction_id) == ("pending", first, "t-1")
    assert [r.done for r in await store.requests_for(1, "o-1")] == [True]

    assert queued.id is not None
    await store.report_refused(queued.id, "INCORRECT_DETAILS")
    await store.record_outcome(1, "o-1", "k-1", Outcome("kom:s:2", "capture", "failed", 50, message="403"))
    assert [(r.state, r.error) for r in await store.order_reports(1, "o-1")] == [
        ("refused", "INCORRECT_DETAILS")
    ]

    await store.touch_order(1, "o-1")
    assert await store.retry_now(1, "o-1")  # try the refused again
    assert [r.state for r in await store.order_reports(1, "o-1")] == ["pending"]
    assert await store.outcomes(1, "k-1") == []
    await store.report_sent(queued.id)
    assert [r.state for r in await store.order_reports(1, "o-1")] == ["sent"]

    assert await store.delete_installation("https://x/graphql/")
    assert await store.order_reports(1, "o-1") == [] and await store.outcomes(1, "k-1") == []


async def test_only_the_holder_renews_a_lease(store: Store) -> None:
    await store.touch_order(1, "o-1")
    job = await store.claim("w-1", timedelta(seconds=1))
    assert job is not None
    assert await store.renew(job, "w-1", timedelta(seconds=60))
    assert not await store.renew(job, "w-2", timedelta(seconds=60))
    assert await store.claim("w-2", timedelta(seconds=1)) is None
    await store.finish(job, state="in_sync")
    assert not await store.renew(job, "w-1", timedelta(seconds=60))  # released: nothing to renew
