"""The dashboard's JSON API shows reconcile's findings and each order's authorization expiry,
and saves the channel's automatic-extension setting. Over real HTTP (KOM under uvicorn, the
fake Saleor minting the Dashboard's tokens, the Klarna sandbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.klarna.sandbox import DEMO_API_KEY
from plugin.service.authorization import keep_authorization
from plugin.service.reconcile import Scope, reconcile
from plugin.web.dashboard.settings_form import check_form, public_view
from tests.dashboard.helpers import headers
from tests.e2e.harness import Order, World, world

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
API = "/api/dashboard"
WINDOW = timedelta(hours=48)


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as built:
        await built.install()
        yield built


async def get(w: World, path: str) -> Any:
    response = await w.http.get(f"{w.kom_url}{API}{path}", headers=headers(w))
    assert response.status_code == 200, response.text
    return response.json()


async def expiring_and_lost(w: World) -> tuple[Order, Order]:
    """One order KOM handled whose authorization runs out in 20 h with goods unshipped, and
    one whose fulfillment webhook never arrived (KOM never heard of it)."""
    expiring = await w.new_order(SEED)
    w.saleor.fulfill(expiring.id, {expiring.lines[0]: 1})
    await w.settle()
    w.klarna(expiring).expires_at = (datetime.now(UTC) + timedelta(hours=20)).replace(microsecond=0)
    lost = await w.new_order(SEED)
    w.saleor.fulfill(lost.id, {lost.lines[2]: 1})
    for delivery in w.saleor.pending():
        delivery.state = "dropped"
    services = w.services()
    now = datetime.now(UTC)
    await reconcile(w.store, services.platform, services.provider, Scope(), now=now, window=WINDOW)
    # What the worker does after syncing the order (plugin.service.authorization).
    settings = await w.store.settings_for(1, None)
    assert settings is not None
    snapshot = await services.platform(await _installation(w)).fetch_order(expiring.id)
    provider = services.provider(settings)
    await keep_authorization(
        w.store,
        provider,
        installation_id=1,
        order=snapshot.order,
        state=await provider.get_order(expiring.klarna_id),
        extend=False,
        window=WINDOW,
        now=now,
    )
    return expiring, lost


async def _installation(w: World) -> Any:
    installation = await w.store.installation(1)
    assert installation is not None
    return installation


async def test_the_order_list_shows_findings_and_each_orders_expiry(w: World) -> None:
    expiring, lost = await expiring_and_lost(w)
    body = await get(w, "/orders")
    by_kind = {f["kind"]: f for f in body["findings"]}
    assert set(by_kind) == {"authorization_expiring", "shipment_not_captured"}  # the expiry once, not twice
    assert by_kind["shipment_not_captured"]["order_id"] == lost.id
    assert by_kind["shipment_not_captured"]["tracked"] is False  # KOM never handled it: no order page
    assert by_kind["authorization_expiring"]["tracked"] is True
    assert "turn on automatic extension" in by_kind["authorization_expiring"]["suggested_action"]
    (row,) = [o for o in body["orders"] if o["id"] == expiring.id]
    assert row["findings"] == 1
    assert row["authorization"]["state"] == "warning" and row["authorization"]["unshipped_units"] == 2
    expires = datetime.fromisoformat(row["authorization"]["expires_at"])
    assert expires == w.klarna(expiring).expires_at


async def test_the_order_view_shows_the_expiry_the_clock_and_the_findings(w: World) -> None:
    expiring, _ = await expiring_and_lost(w)
    view = await get(w, f"/orders/{expiring.id}")
    assert datetime.fromisoformat(view["provider"]["expires_at"]) == w.klarna(expiring).expires_at
    assert view["authorization"]["state"] == "warning" and view["authorization"]["extend"] is False
    assert "2 items not shipped" in view["authorization"]["message"]
    assert [f["kind"] for f in view["findings"]] == ["authorization_expiring"]


async def test_automatic_extension_is_saved_per_channel(w: World) -> None:
    body = {
        "provider": "klarna",
        "environment": "playground",
        "region": "eu",
        "credential_type": "api_key",
        "api_key": DEMO_API_KEY,
        "base_url": w.klarna_url,
        "extend_authorization": True,
    }
    response = await w.http.put(f"{w.kom_url}{API}/settings", headers=headers(w), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["extend_authorization"] is True
    saved = await w.store.settings_for(1, None)
    assert saved is not None and saved.extend_authorization is True
    wrong = await w.http.put(
        f"{w.kom_url}{API}/settings", headers=headers(w), json={**body, "extend_authorization": "yes"}
    )
    assert wrong.status_code == 422 and "extend_authorization" in wrong.json()["fields"]


def test_the_form_defaults_to_no_automatic_extension() -> None:
    form = {"provider": "klarna", "environment": "playground", "region": "eu", "api_key": DEMO_API_KEY}
    checked = check_form(form, "", None)
    assert checked.settings is not None and checked.settings.extend_authorization is False
    assert public_view(None)["extend_authorization"] is False
    assert public_view(checked.settings)["extend_authorization"] is False
