"""Reconcile over real HTTP: the fake Saleor, KOM's store, the Klarna sandbox. Drift is made the
way it happens: a webhook that never arrives, a capture or refund made in the provider's
portal (here: straight at the sandbox's Order Management API), an authorization running out."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.klarna.sandbox import DEMO_API_KEY
from plugin.service.reconcile import Report, Scope, reconcile
from tests.e2e.harness import SECRET, Order, World, world

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
WINDOW = timedelta(hours=48)


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as built:
        await built.install()
        yield built


async def run(w: World, order: Order | None = None, **scope: Any) -> Report:
    services = w.services()
    return await reconcile(
        w.store,
        services.platform,
        services.provider,
        Scope(order=order.id if order else None, **scope),
        now=datetime.now(UTC),
        window=WINDOW,
    )


def kinds(report: Report, order: Order | None = None) -> list[str]:
    return [f.kind for check, f in report.findings if order is None or check.order_id == order.id]


def lose_webhooks(w: World) -> None:
    """Saleor queued them; they never reach KOM."""
    for delivery in w.saleor.pending():
        delivery.state = "dropped"


async def at_klarna(w: World, order: Order, path: str, body: dict[str, Any]) -> None:
    """A write made in the provider's portal, not by KOM."""
    response = await w.http.post(
        f"{w.klarna_url}/ordermanagement/v1/orders/{order.klarna_id}{path}",
        json=body,
        headers={"Authorization": f"Basic {DEMO_API_KEY}"},
    )
    assert response.status_code == 201, response.text


def sneakers_line(reference: str) -> dict[str, Any]:
    return {
        "type": "physical",
        "reference": reference,
        "name": "Sneakers",
        "quantity": 1,
        "unit_price": 10000,
        "total_amount": 10000,
        "tax_rate": 2500,
        "total_tax_amount": 2000,
    }


async def ship_seed(w: World) -> Order:
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1")
    await w.settle()
    w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-2")
    await w.settle()
    return order


async def test_an_order_in_sync_has_no_findings(w: World) -> None:
    order = await ship_seed(w)
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[2]: 1})
    w.saleor.request_refund_for_granted_refund(grant)
    await w.settle()
    assert w.klarna(order).remaining_authorized_amount == 0  # the last parcel used it all up
    report = await run(w, order)
    assert report.clean and kinds(report) == []
    (check,) = report.checks
    assert check.provider_order_id == order.klarna_id and check.expires_at is not None
    assert await w.store.findings(1) == []


async def test_a_cancel_after_the_first_parcel_releases_the_rest_and_leaves_nothing_open(w: World) -> None:
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    assert kinds(await run(w, order)) == []  # the sneakers may still ship: nothing to report yet
    w.saleor.request_action(order.transaction, "CANCEL")
    await w.settle()
    assert w.klarna(order).remaining_authorized_amount == 0
    assert kinds(await run(w, order)) == []  # released: no authorization left open or expiring


async def test_a_parcel_cancelled_after_capture_and_sent_again_is_not_reported(w: World) -> None:
    order = await w.new_order(SEED)
    first = w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-1")
    await w.settle()
    w.saleor.cancel_fulfillment(first.id)
    w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-2")  # the same sneakers again
    await w.settle()
    assert len(w.klarna(order).captures) == 1  # covered by the first capture, not captured twice
    assert kinds(await run(w, order)) == []


async def test_a_lost_fulfillment_webhook_is_a_parcel_not_captured_until_synced(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    lose_webhooks(w)
    await w.settle()
    assert w.klarna(order).captures == [] and await w.store.order_job(1, order.id) is None
    report = await run(w)  # KOM never heard of the order: the platform's recent orders name it
    (finding,) = [f for check, f in report.findings if check.order_id == order.id]
    assert finding.kind == "shipment_not_captured" and "€100.00 not invoiced" in finding.detail
    assert "Retry the order" in finding.suggested_action
    stored = await w.store.findings(1, order.id)
    assert [f.kind for f in stored] == ["shipment_not_captured"]
    await w.worker.sweep(datetime.now(UTC) - timedelta(hours=1))  # what the periodic sweep does
    await w.settle()
    assert len(w.klarna(order).captures) == 1
    assert kinds(await run(w, order)) == [] and await w.store.findings(1, order.id) == []


async def test_a_refund_recorded_but_not_sent(w: World) -> None:
    order = await ship_seed(w)
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[0]: 1, order.lines[2]: 1})
    w.saleor.request_refund_for_granted_refund(grant)
    await w.saleor.deliver_pending()  # KOM recorded it; its worker has not run yet
    (finding,) = (await run(w, order)).findings
    assert finding[1].kind == "refund_not_sent"
    assert "€130.00" in finding[1].detail and "2 refunds, invoices 1, 2" in finding[1].detail
    await w.settle()
    assert kinds(await run(w, order)) == []


async def test_a_capture_made_elsewhere_is_adopted_with_its_references(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
    await w.settle()
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    lose_webhooks(w)  # ... and the merchant captured the sneakers in the provider's portal
    await at_klarna(
        w, order, "/captures", {"captured_amount": 10000, "order_lines": [sneakers_line("SNEAKERS/2")]}
    )
    report = await run(w, order)
    assert sorted(kinds(report)) == ["capture_elsewhere", "charge_drift"]
    adopted = next(f for _, f in report.findings if f.kind == "capture_elsewhere")
    assert "KOM adopted it" in adopted.detail and "(SNEAKERS/2)" in adopted.detail
    drift = next(f for _, f in report.findings if f.kind == "charge_drift")
    assert "Saleor shows €100.00 charged, the provider €200.00" in drift.detail
    # A return of the sneakers is booked on the adopted capture, with its references.
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[2]: 1}, amount="100.00")
    w.saleor.request_refund_for_granted_refund(grant)
    await w.saleor.deliver_pending()
    report = await run(w, order)
    assert sorted(kinds(report)) == ["capture_elsewhere", "refund_not_sent"]
    pending = next(f for _, f in report.findings if f.kind == "refund_not_sent")
    assert "invoice 2" in pending.detail


async def test_a_capture_elsewhere_without_references_cannot_be_adopted(w: World) -> None:
    order = await w.new_order(SEED)
    await at_klarna(w, order, "/captures", {"captured_amount": 5000})
    report = await run(w, order)
    elsewhere = next(f for _, f in report.findings if f.kind == "capture_elsewhere")
    assert "without line references KOM can read" in elsewhere.detail


async def test_a_refund_elsewhere_without_lines_broke_allocation(w: World) -> None:
    order = await ship_seed(w)
    await at_klarna(w, order, "/refunds", {"refunded_amount": 1000, "description": "goodwill in the portal"})
    report = await run(w, order)
    assert sorted(kinds(report)) == ["charge_drift", "refund_misallocated"]
    broken = next(f for _, f in report.findings if f.kind == "refund_misallocated")
    assert "made outside KOM" in broken.detail and "the refund has no order lines" in broken.detail
    assert "provider's portal" in broken.suggested_action
    # The merchant then refunds the sneakers in Saleor: KOM refuses, and reconcile keeps saying why.
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[2]: 1})
    w.saleor.request_refund_for_granted_refund(grant)
    await w.saleor.deliver_pending()
    report = await run(w, order)
    refused = next(f for _, f in report.findings if f.kind == "refused")
    assert "failed allocation" in refused.detail


async def test_a_refund_elsewhere_with_the_capture_references_is_allocated_but_reported(w: World) -> None:
    order = await ship_seed(w)
    await at_klarna(
        w, order, "/refunds", {"refunded_amount": 10000, "order_lines": [sneakers_line("SNEAKERS/2")]}
    )
    report = await run(w, order)
    assert sorted(kinds(report)) == ["charge_drift", "refund_elsewhere"]
    elsewhere = next(f for _, f in report.findings if f.kind == "refund_elsewhere")
    assert elsewhere.detail.endswith(f"booked on invoice {w.klarna(order).captures[1].klarna_reference}.")


async def test_an_authorization_about_to_expire_with_goods_unshipped(w: World) -> None:
    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    w.klarna(order).expires_at = datetime.now(UTC) + timedelta(hours=20)  # created 27 days ago
    report = await run(w, order)
    (finding,) = [f for _, f in report.findings]
    assert finding.kind == "authorization_expiring" and "2 items not shipped" in finding.detail
    assert "turn on automatic extension" in finding.suggested_action
    w.klarna(order).expires_at = datetime.now(UTC) - timedelta(hours=1)
    assert kinds(await run(w, order)) == ["authorization_expired"]


async def test_unreadable_provider_order_is_a_finding_not_a_crash(w: World) -> None:
    assert w.app is not None
    created = w.saleor.create_order(lines=SEED[:1])
    w.saleor.create_transaction(created.id, w.app, "no-such-klarna-order", "30.00")
    other = await w.new_order(SEED)
    report = await run(w)
    by_order = {check.order_id: check for check in report.checks}
    (finding,) = by_order[created.id].findings
    assert finding.kind == "unreadable" and "no-such-klarna-order" in finding.detail
    assert by_order[other.id].findings == ()


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def kom_env(w: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from plugin.settings import get_settings

    env = {"KOM_DATABASE_URL": w.settings.database_url, "KOM_SECRET_KEY": SECRET}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


async def test_kom_reconcile_prints_a_table_and_exits_1_on_findings(
    w: World, kom_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from plugin.cli import main

    order = await w.new_order(SEED)
    w.saleor.fulfill(order.id, {order.lines[2]: 1})
    lose_webhooks(w)
    clean = await ship_seed(w)
    assert await asyncio.to_thread(main, ["reconcile", "--order", clean.id]) == 0
    assert "Checked 1 order on 1 installation: everything in sync." in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["reconcile", "--since", "1h"]) == 1
    out = capsys.readouterr().out
    header, rule, first, *_ = out.splitlines()
    assert header.split() == ["order", "finding", "detail", "suggested", "action"]
    assert set(rule) == {"-", " "} and first.startswith(f"#{order.number} ")
    assert "shipment_not_captured" in first and "Parcel 1" in first
    assert out.rstrip().endswith("Checked 2 orders on 1 installation: 1 finding on 1 order.")
    assert await asyncio.to_thread(main, ["reconcile", "--installation", "99"]) == 2
    assert "no installation '99'" in capsys.readouterr().out


async def test_kom_reconcile_json_in_a_subprocess(w: World, kom_env: dict[str, str]) -> None:
    order = await ship_seed(w)
    await at_klarna(w, order, "/refunds", {"refunded_amount": 500})
    kom = Path(sys.executable).with_name("kom")
    process = await asyncio.create_subprocess_exec(
        str(kom), "reconcile", "--json", "--installation", w.saleor.api_url,
        env={**os.environ, **kom_env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    assert process.returncode == 1, stderr.decode()
    body = json.loads(stdout)
    assert body["clean"] is False and body["checked"] == 1 and body["problems"] == []
    assert {f["kind"] for f in body["findings"]} == {"refund_misallocated", "charge_drift"}
    (row,) = body["orders"]
    assert row["order_id"] == order.id and row["provider_order_id"] == order.klarna_id
    assert row["authorization_expires_at"] and row["findings"] == 2
    assert {f.kind for f in await w.store.findings(1, order.id)} == {"refund_misallocated", "charge_drift"}
