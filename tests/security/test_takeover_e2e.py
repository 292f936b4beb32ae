"""Re-registration through the fake Saleor's real install flow and tokens (issue 11, item 1).

Both ways: another app's valid token cannot take KOM's installation over, and a real
reinstall (the old app deleted, its token dead) starts with no settings and no key.
"""

from __future__ import annotations

from pathlib import Path

from tests.dashboard.helpers import ALL_PERMISSIONS, headers
from tests.e2e.harness import world
from tests.fakes.stub_app import StubApp, serve_stub_app

SEED = [("TSHIRT", "T-shirt", 1, "30.00", "0.25")]


async def test_another_apps_token_cannot_take_over_and_kom_keeps_working(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        installation = await w.install()
        assert w.app is not None
        with serve_stub_app(StubApp(webhooks=[], identifier="test.other-app")) as stub:
            other = await w.saleor.install(f"{stub.base_url}/api/manifest")
        response = await w.http.post(
            f"{w.kom_url}/api/register",
            json={"auth_token": other.token},
            headers={"Saleor-Api-Url": w.saleor.api_url},
        )
        assert response.status_code == 403
        kept = await w.store.installation(installation.id)
        assert kept is not None and kept.app_id == w.app.id and kept.token == w.app.token
        settings = await w.store.settings_for(installation.id, None)
        assert settings is not None and settings.api_key
        # KOM's genuine webhooks still verify and reach the worker ...
        order = await w.new_order(SEED)
        w.saleor.fulfill(order.id, {order.lines[0]: 1})
        await w.settle()
        assert len(w.klarna(order).captures) == 1
        # ... and the other app's Dashboard token cannot use the saved key.
        foreign = w.saleor.mint_dashboard_token(other, user_permissions=ALL_PERMISSIONS)
        refused = await w.http.get(f"{w.kom_url}/api/dashboard/settings", headers=headers(w, foreign))
        assert refused.status_code == 401


async def test_a_real_reinstall_starts_with_no_settings_and_no_credentials(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        old = await w.install()
        assert w.app is not None
        await w.saleor.uninstall(w.app)  # APP_DELETED not delivered: KOM still has the old row
        w.app = await w.saleor.install(f"{w.kom_url}/api/manifest")
        (new,) = await w.store.installations()  # uncached: KOM's web process wrote it
        assert new.app_id == w.app.id and new.token == w.app.token
        assert await w.store.settings_for(new.id, None) is None  # (SQLite may reuse the old id)
        assert await w.store.settings_for(old.id, None) is None
        page = (await w.http.get(f"{w.kom_url}/api/dashboard/settings", headers=headers(w))).json()
        assert page["configured"] is False and page["settings"]["api_key_set"] is False
        await w.saleor.deliver_pending()  # the old app's APP_DELETED, if any, is not the new one's
        assert [i.id for i in await w.store.installations()] == [new.id]
