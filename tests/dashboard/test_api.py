"""The dashboard's JSON API over real HTTP: KOM under uvicorn, the fake Saleor minting the
Dashboard's tokens with its real key, and the Klarna sandbox. Every refusal, then each endpoint."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adapters.klarna import connection
from adapters.klarna.client import OrderManagementClient
from adapters.klarna.models import RefundRequest
from adapters.klarna.sandbox import DEMO_API_KEY, DEMO_KEY_USERNAME, Fault, SandboxState
from adapters.klarna.sandbox import create_app as create_sandbox
from adapters.klarna.sandbox.auth import Credentials
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.store.store import ChannelSettings
from tests.dashboard.helpers import ALL_PERMISSIONS, headers, token
from tests.e2e.harness import Order, World, world
from tests.fakes.stub_app import StubApp, serve_stub_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
API = "/api/dashboard"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def w(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with world(tmp_path_factory.mktemp("dashboard-api")) as built:
        await built.install()
        yield built


def url(w: World, path: str) -> str:
    return f"{w.kom_url}{API}{path}"


async def get(w: World, path: str, sent: dict[str, str] | None = None) -> Any:
    return await w.http.get(url(w, path), headers=headers(w) if sent is None else sent)


def form(w: World, **changes: Any) -> dict[str, Any]:
    """A valid settings form pointing at the sandbox."""
    body: dict[str, Any] = {
        "provider": "klarna",
        "environment": "playground",
        "region": "eu",
        "credential_type": "api_key",
        "api_key": DEMO_API_KEY,
        "base_url": w.klarna_url,
        "capture_mode": "on_fulfillment",
        "shipping_fee": "first_parcel",
        "unknown_origin": "earliest_first",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def ship_seed(w: World) -> Order:
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1")
    await w.settle()
    w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-2")
    await w.settle()
    return order


# -- refusals ---------------------------------------------------------------------------------


async def test_no_token_is_401(w: World) -> None:
    response = await w.http.get(url(w, "/me"), headers={"Saleor-Api-Url": w.saleor.api_url})
    assert response.status_code == 401
    assert response.json() == {"error": "Missing dashboard token (Authorization-Bearer header)."}


async def test_no_saleor_api_url_is_401(w: World) -> None:
    response = await w.http.get(url(w, "/me"), headers={"Authorization-Bearer": token(w)})
    assert response.status_code == 401
    assert "Saleor-Api-Url" in response.json()["error"]


async def test_expired_token_is_401(w: World) -> None:
    response = await get(w, "/settings", headers(w, token(w, expires_in=-60)))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]


async def test_token_of_another_app_is_401(w: World) -> None:
    with serve_stub_app(StubApp(webhooks=[], identifier="test.other-app")) as stub:
        other = await w.saleor.install(f"{stub.base_url}/api/manifest")
        foreign = w.saleor.mint_dashboard_token(other, user_permissions=ALL_PERMISSIONS)
        response = await get(w, "/settings", headers(w, foreign))
    assert response.status_code == 401
    assert response.json() == {"error": "The token was issued for another app."}


async def test_unknown_saleor_url_is_401(w: World) -> None:
    response = await get(w, "/me", headers(w, api_url="https://unknown.example.com/graphql/"))
    assert response.status_code == 401
    assert "not installed" in response.json()["error"]


async def test_forged_and_malformed_tokens_are_401(w: World) -> None:
    real = token(w, ("MANAGE_APPS",))
    head, payload, signature = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["user_permissions"] = list(ALL_PERMISSIONS)  # a user granting themselves more
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged}.{signature}", "not-a-jwt", f"{head}.{payload}."):
        response = await get(w, "/settings", headers(w, bad))
        assert response.status_code == 401, bad
        assert response.json()["error"].startswith("The dashboard token is not valid")


async def test_user_lacking_permission_is_403(w: World) -> None:
    orders_only = token(w, ("MANAGE_ORDERS",))
    response = await get(w, "/settings", headers(w, orders_only))
    assert response.status_code == 403
    assert response.json() == {
        "error": "Your Saleor user lacks the permissions MANAGE_APPS, HANDLE_PAYMENTS needed for this."
    }
    apps_only = token(w, ("MANAGE_APPS", "HANDLE_PAYMENTS"))
    response = await get(w, "/orders", headers(w, apps_only))
    assert response.status_code == 403 and "MANAGE_ORDERS" in response.json()["error"]
    response = await w.http.post(url(w, "/orders/T3JkZXI6MQ==/retry"), headers=headers(w, orders_only))
    assert response.status_code == 403 and "HANDLE_PAYMENTS" in response.json()["error"]
    for method, path in (
        ("PUT", "/settings"),
        ("POST", "/test-connection"),
        ("DELETE", "/settings?channel=x"),
    ):
        response = await w.http.request(method, url(w, path), headers=headers(w, orders_only), json={})
        assert response.status_code == 403, (method, path)


async def test_me_tells_the_page_what_the_user_may_do(w: World) -> None:
    response = await get(w, "/me", headers(w, token(w, ("MANAGE_ORDERS",))))
    assert response.status_code == 200
    body = response.json()
    assert body["can"] == {"settings": False, "activity": True, "retry": False}
    assert body["required"]["settings"] == ["MANAGE_APPS", "HANDLE_PAYMENTS"]
    assert response.headers["cache-control"] == "no-store"


async def test_authorization_bearer_header_works_too(w: World) -> None:
    sent = {"Saleor-Api-Url": w.saleor.api_url, "Authorization": f"Bearer {token(w)}"}
    response = await w.http.get(url(w, "/me"), headers=sent)
    assert response.status_code == 200


async def test_no_cookie_is_set_and_none_is_needed(w: World) -> None:
    response = await get(w, "/me")
    assert "set-cookie" not in response.headers
    assert (await w.http.get(url(w, "/me"), headers={"Cookie": "session=x"})).status_code == 401


# -- settings ---------------------------------------------------------------------------------


async def test_settings_never_return_the_secret(w: World) -> None:
    response = await get(w, "/settings")
    assert response.status_code == 200
    body = response.json()
    assert body["configured"] and body["channel"] == "" and body["channels"] == [""]
    settings = body["settings"]
    assert settings["api_key_set"] is True and settings["api_key_hint"] == f"…{DEMO_API_KEY[-4:]}"
    assert DEMO_API_KEY not in response.text
    assert settings["base_url"] == w.klarna_url and settings["provider"] == "klarna"


async def test_put_without_key_keeps_the_saved_one(w: World) -> None:
    body = form(w, api_key=None, shipping_fee="last_parcel", capture_mode="manual")
    response = await w.http.put(url(w, "/settings"), headers=headers(w), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["shipping_fee"] == "last_parcel"
    assert DEMO_API_KEY not in response.text
    saved = await w.store.settings_for(1, None)
    assert saved is not None and saved.api_key == DEMO_API_KEY and saved.capture_mode == "manual"
    response = await w.http.put(url(w, "/settings"), headers=headers(w), json=form(w))
    assert response.status_code == 200


async def test_invalid_settings_are_422_with_a_message_per_field(w: World) -> None:
    body = form(
        w,
        provider="paypal",
        environment="production",
        api_key="klarna_test_api_abc",
        base_url="ftp://example.com",
        capture_mode="sometimes",
    )
    response = await w.http.put(url(w, "/settings?channel=de"), headers=headers(w), json=body)
    assert response.status_code == 422
    fields = response.json()["fields"]
    assert fields == {
        "provider": "Choose Klarna or Kustom.",
        "capture_mode": "Choose when KOM captures: on each fulfillment, or manually.",
        "base_url": "The API base URL must be an absolute http:// or https:// URL.",
    }
    response = await w.http.put(
        url(w, "/settings?channel=de"),
        headers=headers(w),
        json=form(w, environment="production", base_url="http://klarna-proxy.example.com"),
    )
    assert response.json()["fields"] == {
        "api_key": "This is a test key: it only works in the playground environment.",
        "base_url": "Production credentials are only sent over https://.",
    }
    no_key = form(w, api_key=None)
    response = await w.http.put(url(w, "/settings?channel=de"), headers=headers(w), json=no_key)
    assert response.json()["fields"] == {"api_key": "Enter the API key."}
    userpass = form(w, credential_type="username_password", api_key="secret")
    response = await w.http.put(url(w, "/settings?channel=de"), headers=headers(w), json=userpass)
    assert response.json()["fields"] == {"username": "Enter the username."}
    kustom_na = form(w, provider="kustom", region="na", base_url=None, api_key="kco_test_api_x")
    response = await w.http.put(url(w, "/settings?channel=de"), headers=headers(w), json=kustom_na)
    assert "no NA region" in response.json()["fields"]["region"]
    bad_channel = await w.http.put(url(w, "/settings?channel=a/b"), headers=headers(w), json=form(w))
    assert bad_channel.status_code == 422
    not_json = await w.http.put(url(w, "/settings"), headers=headers(w), content=b"{")
    assert not_json.status_code == 422 and not_json.json() == {"error": "The body must be JSON."}


async def test_channel_override_is_saved_listed_and_removed(w: World) -> None:
    response = await get(w, "/settings?channel=channel-us")
    body = response.json()
    assert not body["configured"] and body["inherits_default"]
    assert body["settings"]["api_key_set"] is False  # an override needs credentials of its own
    saved = await w.http.put(
        url(w, "/settings?channel=channel-us"),
        headers=headers(w),
        json=form(w, credential_type="username_password", username=DEMO_KEY_USERNAME),
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["configured"] and body["channels"] == ["", "channel-us"]
    assert body["settings"]["credential_type"] == "username_password"
    assert body["settings"]["username"] == DEMO_KEY_USERNAME
    stored = await w.store.settings_for(1, "channel-us")
    assert stored is not None and stored.channel == "channel-us" and stored.username == DEMO_KEY_USERNAME
    removed = await w.http.delete(url(w, "/settings?channel=channel-us"), headers=headers(w))
    assert removed.status_code == 200
    again = await w.http.delete(url(w, "/settings?channel=channel-us"), headers=headers(w))
    assert again.status_code == 404
    default = await w.http.delete(url(w, "/settings"), headers=headers(w))
    assert default.status_code == 422
    fallback = await w.store.settings_for(1, "channel-us")
    assert fallback is not None and fallback.channel == ""


# -- connection test --------------------------------------------------------------------------


async def test_connection_with_the_saved_key_passes(w: World) -> None:
    response = await w.http.post(url(w, "/test-connection"), headers=headers(w), json=form(w, api_key=None))
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["outcome"] == "ok" and body["endpoint"] == w.klarna_url
    assert "credentials are accepted" in body["message"]


async def test_connection_with_a_wrong_key_says_wrong_credentials(w: World) -> None:
    body = form(w, api_key="klarna_test_api_d3JvbmcK")
    response = await w.http.post(url(w, "/test-connection"), headers=headers(w), json=body)
    result = response.json()
    assert result["ok"] is False and result["outcome"] == "wrong_credentials" and result["status"] == 401
    assert "401 Unauthorized" in result["message"] and "API key is not valid" in result["message"]
    assert "d3JvbmcK" not in response.text


async def test_connection_to_nothing_says_unreachable(w: World) -> None:
    from tests.e2e.harness import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    response = await w.http.post(url(w, "/test-connection"), headers=headers(w), json=form(w, base_url=dead))
    result = response.json()
    assert result["outcome"] == "unreachable" and result["endpoint"] == dead
    assert "could not connect" in result["message"] and "ConnectError" in result["message"]


async def test_connection_to_a_web_server_that_is_not_order_management(w: World) -> None:
    # The fake Saleor answers 404 for this path, without Order Management's error body.
    body = form(w, base_url=w.saleor.base_url)
    result = (await w.http.post(url(w, "/test-connection"), headers=headers(w), json=body)).json()
    assert result["outcome"] == "not_order_management"


async def test_connection_when_the_provider_is_down(w: World) -> None:
    w.fault(Fault.http_error(503, method="GET"))
    result = (await w.http.post(url(w, "/test-connection"), headers=headers(w), json=form(w))).json()
    assert result["outcome"] == "unavailable" and "HTTP 503" in result["message"]


async def test_connection_forbidden_says_wrong_region(w: World) -> None:
    w.fault(Fault.http_error(403, method="GET", error_code="FORBIDDEN"))
    result = (await w.http.post(url(w, "/test-connection"), headers=headers(w), json=form(w))).json()
    assert result["outcome"] == "wrong_region" and result["status"] == 403
    assert result["correlation_id"]


@pytest.fixture
def regions(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Klarna's three regional hosts, played by sandboxes: only NA knows the demo key."""
    others = Credentials(api_keys={"klarna_test_api_b3RoZXIta2V5": None})
    with (
        serve_in_thread(create_sandbox(SandboxState(), credentials=others)) as eu,
        serve_in_thread(create_sandbox(SandboxState())) as na,
        serve_in_thread(create_sandbox(SandboxState(), credentials=others)) as oc,
    ):
        hosts = {"eu": eu, "na": na, "oc": oc}
        monkeypatch.setattr(
            connection, "region_endpoint", lambda provider, environment, region: hosts[region]
        )
        yield hosts


async def test_connection_finds_the_region_the_key_belongs_to(w: World, regions: dict[str, str]) -> None:
    body = form(w, base_url=None)
    result = (await w.http.post(url(w, "/test-connection"), headers=headers(w), json=body)).json()
    assert result["outcome"] == "wrong_region" and result["suggested_region"] == "na"
    assert result["endpoint"] == regions["eu"]
    assert "work in North America" in result["message"]
    wrong = form(w, base_url=None, api_key="klarna_test_api_bm9ib2R5")
    result = (await w.http.post(url(w, "/test-connection"), headers=headers(w), json=wrong)).json()
    assert result["outcome"] == "wrong_credentials"
    right = form(w, base_url=None, region="na")
    result = (await w.http.post(url(w, "/test-connection"), headers=headers(w), json=right)).json()
    assert result["outcome"] == "ok" and "(North America)" in result["message"]


# -- orders -----------------------------------------------------------------------------------


async def test_orders_list_allocation_view_and_retry(w: World) -> None:
    order = await ship_seed(w)
    grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[2]: 1})
    w.saleor.request_refund_for_granted_refund(grant)
    await w.settle()

    listing = (await get(w, "/orders")).json()
    mine = next(o for o in listing["orders"] if o["id"] == order.id)
    assert mine["state"] == "in_sync" and mine["number"] == order.number
    assert listing["counts"]["in_sync"] >= 1 and listing["page"] == 1

    view = (await get(w, f"/orders/{order.id}")).json()
    assert view["warnings"] == []
    provider = view["provider"]
    assert provider["currency"] == "EUR" and provider["captured_amount"] == 21000
    assert provider["refunded_amount"] == 10000 and provider["portal_url"].startswith("https://portal")
    first, second = view["captures"]
    assert [line["reference"] for line in first["lines"]] == ["TSHIRT/1", "JEANS/1", "SHIPPING/1"]
    assert first["captured_amount"] == 11000 and first["refunded_amount"] == 0 and first["left"] == 11000
    assert first["tracking"]["number"] == "PN-1" and second["tracking"]["number"] == "DHL-2"
    assert first["klarna_reference"] and first["made_by"] == "kom"
    assert second["captured_amount"] == 10000 and second["refunded_amount"] == 10000 and second["left"] == 0
    assert second["lines"][0]["refunded_quantity"] == 1
    (refund,) = view["refunds"]
    assert refund["booked_on"] == 2 and refund["made_by"] == "kom"
    assert refund["booked_on_invoice"] == second["klarna_reference"]

    # A refund made in the provider's portal, without lines, breaks allocation.
    client = OrderManagementClient(base_url=w.klarna_url, api_key=DEMO_API_KEY, http_client=w.http)
    import uuid

    await client.refund(order.klarna_id, RefundRequest(refunded_amount=500), uuid.uuid4())
    view = (await get(w, f"/orders/{order.id}")).json()
    (warning,) = view["warnings"]
    assert warning["kind"] == "misallocated" and "made outside KOM" in warning["message"]
    assert view["refunds"][1]["made_by"] == "elsewhere" and view["refunds"][1]["booked_on"] is None

    missing = await get(w, "/orders/T3JkZXI6bm9uZQ==")
    assert missing.status_code == 404

    retried = await w.http.post(url(w, f"/orders/{order.id}/retry"), headers=headers(w))
    assert retried.status_code == 200 and retried.json()["order"]["state"] == "pending"
    assert order.id in [o["id"] for o in (await get(w, "/orders?state=pending")).json()["orders"]]
    await w.settle()
    assert (await w.store.order_job(1, order.id)).state == "in_sync"  # type: ignore[union-attr]
    unknown = await w.http.post(url(w, "/orders/T3JkZXI6bm9uZQ==/retry"), headers=headers(w))
    assert unknown.status_code == 404


async def test_needs_attention_shows_reason_and_correlation_id(w: World) -> None:
    order = await w.new_order(SEED[:1])
    w.fault(Fault.http_error(403, method="POST", path="/captures$", error_code="CAPTURE_NOT_ALLOWED"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1})
    await w.settle()
    listing = (await get(w, "/orders?state=needs_attention")).json()
    (job,) = [o for o in listing["orders"] if o["id"] == order.id]
    assert "capture not allowed, HTTP 403" in job["reason"] and job["correlation_id"]
    assert job["correlation_id"] not in job["reason"]
    view = (await get(w, f"/orders/{order.id}")).json()
    assert view["order"]["state"] == "needs_attention" and view["captures"] == []
    assert (await w.http.post(url(w, f"/orders/{order.id}/retry"), headers=headers(w))).status_code == 200
    await w.settle()
    view = (await get(w, f"/orders/{order.id}")).json()
    assert view["order"]["state"] == "in_sync" and len(view["captures"]) == 1


async def test_orders_pagination_and_bad_queries(w: World) -> None:
    for number in range(25):
        await w.store.touch_order(1, f"T3JkZXI6cGFnZS17{number:02d}", number=f"9{number:03d}")
    first = (await get(w, "/orders?state=pending")).json()
    assert len(first["orders"]) == 20 and first["has_next"] and first["total"] >= 25
    second = (await get(w, "/orders?state=pending&page=2")).json()
    assert second["page"] == 2 and not {o["id"] for o in first["orders"]} & {
        o["id"] for o in second["orders"]
    }
    assert (await get(w, "/orders?state=lost")).status_code == 422
    assert (await get(w, "/orders?page=0")).status_code == 422
    assert (await get(w, "/orders?page=x")).status_code == 422


async def test_a_fresh_install_has_no_settings_and_no_orders(tmp_path: Path) -> None:
    async with world(tmp_path) as fresh:
        fresh.app = await fresh.saleor.install(f"{fresh.kom_url}/api/manifest")
        settings = (await get(fresh, "/settings")).json()
        assert settings["configured"] is False and settings["default_configured"] is False
        assert settings["settings"]["api_key_set"] is False and settings["channels"] == []
        orders = (await get(fresh, "/orders")).json()
        assert orders["orders"] == [] and orders["total"] == 0 and not orders["has_next"]
        saved = await fresh.http.put(url(fresh, "/settings"), headers=headers(fresh), json=form(fresh))
        assert saved.status_code == 200
        stored = await fresh.store.settings_for(1, None)
        assert stored == ChannelSettings(
            "", "klarna", "playground", "eu", DEMO_API_KEY, None, fresh.klarna_url
        ), stored
