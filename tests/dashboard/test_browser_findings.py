"""KOM's page in headless Chromium: reconcile's findings on the Activity tab, each order's
authorization expiry, and the automatic-extension setting (see test_browser.py for the set-up)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugin.service.authorization import keep_authorization
from plugin.service.reconcile import Scope, reconcile
from tests.dashboard.browser import dashboard_host, launch, open_dashboard, require_browser, screenshot
from tests.e2e.harness import world

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    require_browser()


async def test_findings_expiry_and_automatic_extension(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with world(tmp_path) as w:
        await w.install()
        order = await w.new_order(SEED)
        w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1")
        await w.settle()
        w.klarna(order).expires_at = datetime.now(UTC) + timedelta(hours=20)
        lost = await w.new_order([("CAP", "Cap", 1, "25.00", "0.25")])
        w.saleor.fulfill(lost.id, {lost.lines[0]: 1})
        for delivery in w.saleor.pending():
            delivery.state = "dropped"  # this fulfillment's webhook never reaches KOM
        services = w.services()
        await reconcile(
            w.store,
            services.platform,
            services.provider,
            Scope(),
            now=datetime.now(UTC),
            window=timedelta(hours=48),
        )
        settings = await w.store.settings_for(1, None)
        installation = await w.store.installation(1)
        assert settings is not None and installation is not None
        provider = services.provider(settings)
        await keep_authorization(  # what the worker does after syncing the order
            w.store,
            provider,
            installation_id=1,
            order=(await services.platform(installation).fetch_order(order.id)).order,
            state=await provider.get_order(order.klarna_id),
            extend=False,
            window=timedelta(hours=48),
            now=datetime.now(UTC),
        )
        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                findings = frame.locator("#findings")
                await expect(findings).to_be_visible()
                await expect(frame.locator("#findings-count")).to_have_text("2")
                lost_row = frame.locator(f"#findings-body tr[data-order='{lost.id}']")
                await expect(lost_row).to_contain_text("Parcel not captured")
                await expect(lost_row).to_contain_text("Retry the order")
                expiring_row = frame.locator(f"#findings-body tr[data-order='{order.id}']")
                await expect(expiring_row).to_contain_text("Authorization expiring")
                row = frame.locator(f"#orders-body tr[data-order='{order.id}']")
                await expect(row).to_contain_text("1 to check")
                await expect(row.locator("[data-expiry='warning']")).to_contain_text("Authorization expires")
                await screenshot(page, frame, "activity-findings")

                # The order's page: its expiry among the totals, and the finding with what to do.
                await expiring_row.get_by_role("button", name=f"#{order.number}").click()
                await expect(frame.locator(".stats")).to_contain_text("Authorization expires")
                callout = frame.locator(".callout-warning").filter(has_text="Authorization expiring")
                await expect(callout).to_contain_text("1 item not shipped")
                await expect(callout).to_contain_text("What to do: Ship the remaining items")
                await screenshot(page, frame, "allocation-expiring")

                # Settings: automatic extension, off by default, saved per channel.
                await frame.get_by_role("tab", name="Settings").click()
                box = frame.get_by_label("Extend them automatically")
                await expect(box).not_to_be_checked()
                await box.check()
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#save-status")).to_have_text("Saved for all channels.")
                saved = await w.store.settings_for(1, None)
                assert saved is not None and saved.extend_authorization is True
                assert page.errors == []  # type: ignore[attr-defined]
