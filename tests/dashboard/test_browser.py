"""KOM's page in headless Chromium, framed by a stand-in Dashboard on another origin.

The whole product runs on loopback (tests/e2e/harness.py): KOM under uvicorn, the fake
Saleor (which mints the Dashboard's tokens with its real key) and the Klarna sandbox. The
page gets its token through AppBridge's real postMessage handshake, cross-origin.
Screenshots of the main states go to docs/screenshots (see browser.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.klarna.sandbox import DEMO_API_KEY, Fault
from tests.dashboard.browser import (
    dashboard_host,
    launch,
    open_dashboard,
    received,
    require_browser,
    screenshot,
)
from tests.e2e.harness import Order, World, world

SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    require_browser()


async def ship_seed(w: World) -> Order:
    order = await w.new_order(SEED, shipping=("10.00", "0.25"))
    w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1")
    await w.settle()
    w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-2")
    await w.settle()
    return order


async def test_fresh_install_handshake_connection_tests_and_saving_settings(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with world(tmp_path) as w:
        w.app = await w.saleor.install(f"{w.kom_url}/api/manifest")
        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                # The page announced itself and got its token through the handshake.
                ready = (await received(page))[0]
                assert ready["type"] == "notifyReady" and ready["payload"]["actionId"]
                assert host.tokens_minted == 1
                # A fresh install opens on Settings, with a welcome.
                await expect(frame.get_by_role("tab", name="Settings")).to_have_attribute(
                    "aria-selected", "true"
                )
                await expect(frame.locator("#welcome")).to_be_visible()
                await expect(frame.locator("#channel")).to_have_value("")

                # Saving without a key: the message is next to the field, which is marked invalid.
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#err-api_key")).to_have_text("Enter the API key.")
                await expect(frame.locator("#api_key")).to_have_attribute("aria-invalid", "true")
                await expect(frame.locator("#api_key")).to_be_focused()

                # A wrong key: the connection test says exactly that.
                await (
                    frame.get_by_label("API key", exact=True)
                    .and_(frame.locator("#api_key"))
                    .fill("klarna_test_api_d3Jvbmcta2V5")
                )
                await frame.get_by_text("Advanced").click()
                await frame.get_by_label("API base URL override").fill(w.klarna_url)
                await frame.get_by_role("button", name="Test connection").click()
                result = frame.locator("#connection-result")
                await expect(result).to_contain_text("Wrong credentials")
                await expect(result).to_contain_text("401 Unauthorized")
                await expect(result).to_have_attribute("data-outcome", "wrong_credentials")
                await screenshot(page, frame, "connection-failed")

                # Saving exactly what the test just refused asks first; Cancel saves nothing.
                await frame.get_by_role("button", name="Save").click()
                status = frame.locator("#save-status")
                await expect(status).to_contain_text("The connection test failed with these settings")
                await expect(frame.get_by_role("button", name="Save anyway")).to_be_visible()
                await screenshot(page, frame, "save-after-failed-test")
                await frame.get_by_role("button", name="Cancel").click()
                await expect(status).to_have_text("")
                assert await w.store.settings_for(1, None) is None

                # The right key passes, and is saved with a policy change.
                await frame.locator("#api_key").fill(DEMO_API_KEY)
                await frame.get_by_role("button", name="Test connection").click()
                await expect(result).to_contain_text("Connection works")
                await frame.get_by_label("With the last parcel").check()
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#save-status")).to_have_text("Saved for all channels.")
                await expect(frame.locator("#welcome")).to_be_hidden()
                # The key never comes back: the field is empty, with a hint of the saved key.
                await expect(frame.locator("#api_key")).to_have_value("")
                await expect(frame.locator("#help-api_key")).to_contain_text(f"ending …{DEMO_API_KEY[-4:]}")
                assert DEMO_API_KEY not in await frame.content()
                saved = await w.store.settings_for(1, None)
                assert saved is not None and saved.api_key == DEMO_API_KEY
                assert saved.shipping_fee == "last_parcel" and saved.base_url == w.klarna_url
                notes = [m for m in await received(page) if m["type"] == "notification"]
                assert notes and notes[-1]["payload"]["title"] == "Settings saved"
                await screenshot(page, frame, "settings-light")

                # The Dashboard switches to dark: the page follows.
                await page.evaluate("sendTheme('dark')")
                await expect(frame.locator("html")).to_have_attribute("data-theme", "dark")
                await screenshot(page, frame, "settings-dark")
                assert page.errors == []  # type: ignore[attr-defined]


async def test_settings_are_usable_by_keyboard_and_every_control_is_labelled(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with world(tmp_path) as w:
        await w.install()
        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                unlabelled = await frame.evaluate(
                    """[...document.querySelectorAll('input, select, button')]
                        .filter((el) => !el.closest('[hidden]'))
                        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                                        && !el.textContent.trim())
                        .map((el) => el.outerHTML)"""
                )
                assert unlabelled == []
                # Tabs follow the arrow keys; the channel's settings are reached with Tab.
                activity = frame.get_by_role("tab", name="Activity")
                await expect(activity).to_have_attribute("aria-selected", "true")
                await activity.focus()
                await page.keyboard.press("ArrowRight")
                settings_tab = frame.get_by_role("tab", name="Settings")
                await expect(settings_tab).to_be_focused()
                await expect(frame.locator("#panel-settings")).to_be_visible()
                # A policy by arrow keys inside its radio group, then save with Enter.
                await frame.locator("input[name='capture_mode'][value='on_fulfillment']").focus()
                await page.keyboard.press("ArrowDown")
                await expect(frame.locator("input[name='capture_mode'][value='manual']")).to_be_checked()
                await frame.locator("#api_key").focus()
                await page.keyboard.press("Enter")
                await expect(frame.locator("#save-status")).to_have_text("Saved for all channels.")
                saved = await w.store.settings_for(1, None)
                assert saved is not None and saved.capture_mode == "manual" and saved.api_key == DEMO_API_KEY
                # A visible focus ring.
                ring = await frame.locator("#api_key").evaluate("(el) => getComputedStyle(el).boxShadow")
                assert ring != "none"

                # Settings of its own for one channel: they need their own key, then can be removed.
                await frame.get_by_label("Settings for").select_option("__new__")
                await expect(frame.get_by_label("Channel slug")).to_be_focused()
                await page.keyboard.type("channel-de")
                await page.keyboard.press("Enter")
                await expect(frame.locator("#inherit-note")).to_be_visible()
                await expect(frame.locator("#channel")).to_have_value("channel-de")
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#err-api_key")).to_have_text("Enter the API key.")
                await frame.locator("label[for='provider-kustom']").click()  # the segment, as a user does
                await expect(frame.get_by_label("Kustom")).to_be_checked()
                await expect(frame.locator("#region-field")).to_be_hidden()
                await frame.locator("label[for='provider-klarna']").click()
                await frame.locator("#api_key").fill(DEMO_API_KEY)
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#save-status")).to_have_text("Saved for channel channel-de.")
                await expect(frame.locator("#inherit-note")).to_be_hidden()
                own = await w.store.settings_for(1, "channel-de")
                assert own is not None and own.channel == "channel-de"
                await frame.get_by_role("button", name="Remove this channel's settings").click()
                await frame.get_by_role("button", name="Remove", exact=True).click()
                await expect(frame.locator("#save-status")).to_contain_text("now uses the default settings")
                await expect(frame.locator("#channel")).to_have_value("")
                fallback = await w.store.settings_for(1, "channel-de")
                assert fallback is not None and fallback.channel == ""
                assert page.errors == []  # type: ignore[attr-defined]


async def test_allocation_view_of_the_seed_order_and_retry_of_a_failed_order(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with world(tmp_path) as w:
        await w.install()
        seed = await ship_seed(w)
        # A return of the T-shirt (parcel 1) and the sneakers (parcel 2): two refunds.
        grant = w.saleor.grant_refund(
            seed.id, seed.transaction, {seed.lines[0]: 1, seed.lines[2]: 1}, reason="Too small"
        )
        w.saleor.request_refund_for_granted_refund(grant)
        await w.settle()
        failing = await w.new_order([("CAP", "Cap", 1, "25.00", "0.25")], shipping=("5.00", "0.25"))
        w.fault(Fault.http_error(403, method="POST", path="/captures$", error_code="CAPTURE_NOT_ALLOWED"))
        w.saleor.fulfill(failing.id, {failing.lines[0]: 1}, tracking_number="UPS-9")
        await w.settle()
        job = await w.store.order_job(1, failing.id)
        assert job is not None and job.state == "needs_attention"
        # A third order whose fulfillment KOM heard of but has not worked on yet: pending.
        waiting = await w.new_order([("SOCKS", "Socks", 2, "9.00", "0.25")])
        w.saleor.fulfill(waiting.id, {waiting.lines[0]: 2})
        await w.saleor.deliver_pending()

        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                rows = frame.locator("#orders-body tr")
                await expect(rows).to_have_count(3)
                for state in ("needs_attention", "pending", "in_sync"):
                    await expect(frame.locator(f"[data-count='{state}']")).to_have_text("1")
                await expect(rows.first).to_contain_text("Waiting")  # newest first, in words
                await expect(frame.locator("#orders-body")).not_to_contain_text("_")  # no enum names
                await screenshot(page, frame, "activity")

                # Needs attention: the reason and the provider's correlation id, with Retry now.
                await frame.get_by_role("button", name="Needs attention").click()
                await expect(rows).to_have_count(1)
                row = rows.first
                await expect(row).to_contain_text("capture not allowed, HTTP 403")
                await expect(row).to_contain_text("Correlation id")
                await screenshot(page, frame, "activity-needs-attention")

                # The seed order's allocation: two invoices, each refund on its own invoice.
                await frame.get_by_role("button", name="All", exact=False).first.click()
                await frame.get_by_role("button", name=f"#{seed.number}", exact=True).click()
                invoices = frame.locator("article.invoice")
                await expect(invoices).to_have_count(2)
                first, second = invoices.nth(0), invoices.nth(1)
                await expect(first).to_contain_text("TSHIRT/1")
                await expect(first).to_contain_text("PN-1")
                await expect(first).to_contain_text("€110.00")
                await expect(first.locator(".invoice-foot .left")).to_contain_text("€80.00")
                await expect(second).to_contain_text("SNEAKERS/2")
                await expect(second).to_contain_text("DHL-2")
                await expect(second.locator(".invoice-foot .left")).to_contain_text("€0.00")
                refunds = frame.locator("tr[data-refund]")
                await expect(refunds).to_have_count(2)
                booked = sorted([await r.locator("td").last.inner_text() for r in await refunds.all()])
                assert [b.split(" · ")[0] for b in booked] == ["Invoice 1", "Invoice 2"]
                # Listed by the Saleor refund they were made for, Klarna's refund id beside it.
                for row in await refunds.all():
                    await expect(row).to_contain_text("Saleor refund 1 · €130.00")
                    await expect(row).to_contain_text("Reason: Too small")
                    await expect(row).to_contain_text(
                        f"Klarna refund {await row.get_attribute('data-refund')}"
                    )
                await expect(frame.locator(".detail-head")).to_contain_text("Captured")
                await expect(frame.locator(".detail-head")).not_to_contain_text("CAPTURED")
                await expect(frame.locator(".callout-warning")).to_have_count(0)
                await screenshot(page, frame, "allocation-seed-order")

                # Back, and retry the failed order: it captures and is in sync.
                await frame.get_by_role("button", name="← All orders").click()
                await frame.get_by_role("button", name="Needs attention").click()
                await frame.get_by_role("button", name=f"Retry order #{failing.number} now").click()
                await expect(frame.locator("#notice")).to_contain_text("Retry scheduled")
                await w.settle()
                await frame.get_by_role("button", name="Refresh").click()
                await expect(rows).to_have_count(0)
                await expect(frame.locator("#orders-empty")).to_contain_text("No order needs your attention")
                await frame.get_by_role("button", name="In sync").click()
                await expect(rows).to_have_count(3)
                job = await w.store.order_job(1, failing.id)
                assert job is not None and job.state == "in_sync"
                assert len(w.klarna(failing).captures) == 1
                assert page.errors == []  # type: ignore[attr-defined]


async def test_a_refund_made_elsewhere_shows_the_allocation_warning(tmp_path: Path) -> None:
    from playwright.async_api import expect

    from adapters.klarna.client import OrderManagementClient
    from adapters.klarna.models import RefundRequest

    async with world(tmp_path) as w:
        await w.install()
        seed = await ship_seed(w)
        client = OrderManagementClient(base_url=w.klarna_url, api_key=DEMO_API_KEY, http_client=w.http)
        import uuid

        await client.refund(
            seed.klarna_id, RefundRequest(refunded_amount=1500, description="Goodwill"), uuid.uuid4()
        )
        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host, theme="dark")
                await frame.get_by_role("button", name=f"#{seed.number}", exact=True).click()
                warning = frame.locator(".callout-warning")
                await expect(warning).to_contain_text("A refund made outside KOM")
                await expect(frame.locator("tr[data-refund]")).to_contain_text("Not allocated")
                await expect(frame.locator("tr[data-refund]")).to_contain_text("Made outside KOM")
                # KOM has nothing left to do, but this order is not "In sync".
                chip = frame.locator(".detail-head [data-status]")
                await expect(chip).to_have_text("Allocation broken")
                await screenshot(page, frame, "allocation-warning-dark")


async def test_an_order_refused_for_wrong_credentials_links_to_settings(tmp_path: Path) -> None:
    from dataclasses import replace

    from playwright.async_api import expect

    async with world(tmp_path) as w:
        await w.install()
        saved = await w.store.settings_for(1, None)
        assert saved is not None
        await w.store.save_settings(1, replace(saved, api_key="klarna_test_api_" + "x" * 40))
        order = await w.new_order([("CAP", "Cap", 1, "25.00", "0.25")])
        w.saleor.fulfill(order.id, {order.lines[0]: 1})
        await w.settle()
        job = await w.store.order_job(1, order.id)
        assert job is not None and job.state == "needs_attention" and "HTTP 401" in (job.reason or "")
        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                row = frame.locator(f"#orders-body tr[data-order='{order.id}']")
                await expect(row).to_contain_text("Needs attention")
                await expect(row).to_contain_text("rejected KOM's credentials")
                await screenshot(page, frame, "activity-wrong-credentials")
                await row.get_by_role("button", name="Open Settings").click()
                await expect(frame.get_by_role("tab", name="Settings")).to_have_attribute(
                    "aria-selected", "true"
                )
                await expect(frame.locator("#panel-settings")).to_be_visible()
                assert page.errors == []  # type: ignore[attr-defined]


async def test_permissions_origins_token_refresh_and_the_empty_state(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with world(tmp_path) as w:
        await w.install()
        with dashboard_host(w, permissions=("MANAGE_ORDERS",)) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                # Activity is allowed, and a fresh shop shows a clear empty state.
                await expect(frame.locator("#orders-empty")).to_contain_text("No orders yet")
                await screenshot(page, frame, "activity-empty")
                # Settings need MANAGE_APPS and HANDLE_PAYMENTS.
                await frame.get_by_role("tab", name="Settings").click()
                denied = frame.locator("#settings-denied")
                await expect(denied).to_contain_text("MANAGE_APPS and HANDLE_PAYMENTS")
                await expect(frame.locator("#settings-form")).to_be_hidden()

                # A message that is not from the Dashboard (other origin, or not the parent) is ignored.
                await frame.evaluate(
                    """(dashboard) => {
                        const forged = {type: 'theme', payload: {theme: 'dark'}};
                        const send = (origin) => window.dispatchEvent(
                            new MessageEvent('message', {data: forged, origin}));
                        send('https://evil.example');
                        send(dashboard);  // the right origin, but not from the parent window
                    }""",
                    host.url,
                )
                await expect(frame.locator("html")).to_have_attribute("data-theme", "light")
                await page.evaluate("sendTheme('dark')")
                await expect(frame.locator("html")).to_have_attribute("data-theme", "dark")

                # tokenRefresh: the page carries on with the new token.
                await page.evaluate("refreshToken()")
                assert host.tokens_minted == 2
                await frame.get_by_role("tab", name="Activity").click()
                await frame.get_by_role("button", name="Refresh").click()
                await expect(frame.locator("#orders-empty")).to_be_visible()

                # Outside the Dashboard the page explains where to open it, and asks for nothing.
                alone = await browser.new_page()
                await alone.goto(f"{w.kom_url}/app?saleorApiUrl={w.saleor.api_url}")
                await expect(alone.locator("#gate")).to_contain_text(
                    "Open this page from the Saleor Dashboard"
                )
                csp = (await alone.request.get(f"{w.kom_url}/app")).headers["content-security-policy"]
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp
                assert page.errors == []  # type: ignore[attr-defined]


async def test_klarna_at_checkout_settings_are_validated_and_saved_per_channel(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with world(tmp_path) as w:
        await w.install()  # saved defaults: Klarna Payments off
        with dashboard_host(w) as host:
            async with launch() as browser:
                page, frame = await open_dashboard(browser, host)
                await frame.get_by_role("tab", name="Settings").click()
                await expect(frame.locator("#payments_enabled")).not_to_be_checked()
                await frame.get_by_label("Shoppers pay with Klarna through KOM").check()
                await frame.get_by_label("Pay later").check()
                await frame.get_by_label("Financing (pay over time)").check()
                await frame.get_by_label("Klarna locale").fill("sweden")
                await frame.get_by_label("Shoppers' countries").fill("SE, Finland")
                await frame.locator("#api_key").fill(DEMO_API_KEY)
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#err-payment_locale")).to_contain_text("language-COUNTRY")
                await expect(frame.locator("#err-purchase_countries")).to_contain_text("not FINLAND")
                unsaved = await w.store.settings_for(1, None)
                assert unsaved is not None and not unsaved.payments_enabled  # nothing saved
                await frame.get_by_label("Klarna locale").fill("sv-SE")
                await frame.get_by_label("Shoppers' countries").fill("se, FI")
                await frame.locator("#api_key").fill(DEMO_API_KEY)
                await frame.get_by_role("button", name="Save").click()
                await expect(frame.locator("#save-status")).to_have_text("Saved for all channels.")
                saved = await w.store.settings_for(1, None)
                assert saved is not None and saved.payments_enabled
                assert saved.payment_categories == ("pay_later", "pay_over_time")
                assert (saved.payment_locale, saved.purchase_countries) == ("sv-SE", ("SE", "FI"))
                page, frame = await open_dashboard(browser, host)
                await frame.get_by_role("tab", name="Settings").click()
                await expect(frame.locator("#payments_enabled")).to_be_checked()
                await expect(frame.locator("#purchase_countries")).to_have_value("SE, FI")
                assert page.errors == []  # type: ignore[attr-defined]
