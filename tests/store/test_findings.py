"""Needs-attention findings, authorization expiry and the auto-extend setting, on SQLite and
PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from plugin.service.records import AuthorizationRecord, FindingRecord
from plugin.store.secrets import SecretBox
from plugin.store.store import ChannelSettings, Store

KEY = "test-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, SecretBox(KEY), lambda: NOW)
    yield opened
    await opened.close()


async def install(store: Store, url: str = "https://shop.example/graphql/") -> int:
    saved = await store.save_installation(
        platform="saleor", api_url=url, app_id="QXBwOjE=", token="t", jwks={}
    )
    return saved.id


def finding(order: str, kind: str, subject: str | None = None) -> FindingRecord:
    return FindingRecord(order, kind, f"{kind} on {order}", "do something", subject=subject, order_number="7")


def clock_of(order: str, state: str, expires_at: datetime | None, unshipped: int = 1) -> AuthorizationRecord:
    return AuthorizationRecord(order, f"klarna-{order}", state, expires_at, unshipped, 5000, "EUR")


async def test_findings_replace_per_order_and_source(store: Store) -> None:
    installation = await install(store)
    await store.replace_findings(
        installation, "A", "reconcile", [finding("A", "shipment_not_captured", "F1")]
    )
    await store.replace_findings(installation, "A", "authorization", [finding("A", "authorization_expiring")])
    await store.replace_findings(installation, "B", "reconcile", [finding("B", "refund_elsewhere")])
    assert {f.kind for f in await store.findings(installation)} == {
        "shipment_not_captured",
        "authorization_expiring",
        "refund_elsewhere",
    }
    (only,) = await store.findings(installation, "B")
    assert (only.detail, only.suggested_action, only.order_number, only.found_at) == (
        "refund_elsewhere on B",
        "do something",
        "7",
        NOW,
    )
    later = Store(store.engine, store.box, lambda: NOW + timedelta(hours=1))  # the next run, an hour on
    await later.replace_findings(
        installation, "B", "reconcile", [finding("B", "refund_elsewhere"), finding("B", "charge_drift")]
    )
    found = {f.kind: f.found_at for f in await store.findings(installation, "B")}
    assert found == {"refund_elsewhere": NOW, "charge_drift": NOW + timedelta(hours=1)}  # first found
    await store.replace_findings(installation, "A", "reconcile", [])  # A is clean now (for reconcile)
    assert [f.kind for f in await store.findings(installation, "A")] == ["authorization_expiring"]
    other = await install(store, "https://other.example/graphql/")
    assert await store.findings(other) == []
    assert await store.delete_installation("https://shop.example/graphql/")
    assert await store.findings(installation) == []


async def test_authorization_upsert_and_what_is_due(store: Store) -> None:
    installation = await install(store)
    soon, later = NOW + timedelta(hours=10), NOW + timedelta(days=20)
    await store.save_authorization(installation, clock_of("soon", "ok", soon))
    await store.save_authorization(installation, clock_of("later", "ok", later))
    await store.save_authorization(installation, clock_of("shipped", "ok", soon, unshipped=0))
    await store.save_authorization(installation, clock_of("warned", "warning", soon))
    await store.save_authorization(installation, clock_of("lapsed", "warning", NOW - timedelta(hours=1)))
    due = await store.authorizations_due(warn_before=NOW + timedelta(hours=48), now=NOW)
    assert due == [(installation, "lapsed"), (installation, "soon")]
    await store.save_authorization(installation, clock_of("soon", "warning", soon))  # an update, not a row
    found = await store.authorizations(installation, ["soon", "later", "nope"])
    assert set(found) == {"soon", "later"} and found["soon"].state == "warning"
    assert found["soon"].expires_at == soon and found["soon"].checked_at == NOW
    assert await store.authorizations_due(warn_before=NOW + timedelta(hours=48), now=NOW) == [
        (installation, "lapsed")
    ]


async def test_extend_authorization_is_a_channel_setting_off_by_default(store: Store) -> None:
    installation = await install(store)
    await store.save_settings(
        installation, ChannelSettings("", "klarna", "playground", "eu", "k", None, None)
    )
    default = await store.settings_for(installation, None)
    assert default is not None and default.extend_authorization is False
    await store.save_settings(
        installation,
        ChannelSettings("se", "klarna", "playground", "eu", "k", None, None, extend_authorization=True),
    )
    own = await store.settings_for(installation, "se")
    assert own is not None and own.extend_authorization is True
