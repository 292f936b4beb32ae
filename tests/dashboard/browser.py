"""A real browser against KOM's page, framed by a stand-in Saleor Dashboard on another origin.

- ``require_browser()``: skip (or fail under ``CI=true``) when Debian's Chromium or the
  ``playwright`` package is missing (``.ci/install-browser`` installs both).
- ``dashboard_host(world, ...)``: serves, on its own loopback port (so its own origin), a
  page that iframes KOM's ``/app`` exactly like the Dashboard does (query parameters,
  ``sandbox`` attribute) and answers AppBridge's ``notifyReady`` with a ``handshake``
  carrying a token the fake Saleor mints with its real key. ``window.received`` keeps every
  message KOM's page posted; ``sendTheme(t)`` and ``refreshToken()`` play the Dashboard.
- ``launch()``: Chromium headless, through Playwright's async API.
- ``screenshot(page, name)``: the framed page at its full height, into a temporary folder
  (``KOM_SCREENSHOTS=docs/screenshots`` refreshes the committed ones; ``off`` writes none).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from adapters.klarna.sandbox.server import serve_in_thread
from tests.dashboard.helpers import ALL_PERMISSIONS
from tests.e2e.harness import World

if TYPE_CHECKING:
    from playwright.async_api import Browser, Frame, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1200, "height": 860}


def require_browser() -> None:
    missing = []
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append(f"Debian's chromium ({CHROMIUM})")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if not missing:
        return
    reason = f"browser tests need {' and '.join(missing)}: run .ci/install-browser"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def screenshot_dir() -> Path | None:
    setting = os.environ.get("KOM_SCREENSHOTS", "")
    if setting.lower() in ("off", "0", "no"):
        return None
    folder = Path(setting) if setting else Path(tempfile.gettempdir()) / "kom-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Host:
    """The stand-in Dashboard: its URL and what the test wants it to hand out."""

    world: World
    url: str = ""
    permissions: list[str] = field(default_factory=lambda: list(ALL_PERMISSIONS))
    tokens_minted: int = 0

    def page_url(self, theme: str = "light") -> str:
        return f"{self.url}/?{urlencode({'theme': theme})}"


_HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Saleor Dashboard (test stand-in)</title>
<style>html,body{margin:0;height:100%}iframe{border:0;display:block;width:100%;height:100%}</style>
</head><body>
<iframe id="app" title="Klarna &amp; Kustom Order Management" src="__SRC__"
        sandbox="allow-same-origin allow-forms allow-scripts"></iframe>
<script>
const KOM = __KOM__;
const frame = document.getElementById("app");
window.received = [];
async function freshToken() { return (await fetch("/token")).text(); }
function post(message) { frame.contentWindow.postMessage(message, KOM); }
window.addEventListener("message", async (event) => {
  if (event.origin !== KOM || event.source !== frame.contentWindow) return;
  window.received.push(event.data);
  const data = event.data || {};
  if (data.type === "notifyReady") {
    post({type: "response", payload: {actionId: data.payload.actionId, ok: true}});
    post({type: "handshake", payload: {token: await freshToken(), version: 1,
          saleorVersion: "3.23.28", dashboardVersion: "3.23.0"}});
  }
});
window.sendTheme = (theme) => post({type: "theme", payload: {theme}});
window.refreshToken = async () => post({type: "tokenRefresh", payload: {token: await freshToken()}});
</script></body></html>"""


def _host_app(host: Host) -> Starlette:
    world = host.world

    async def page(request: Request) -> Response:
        assert world.app is not None
        theme = request.query_params.get("theme", "light")
        query = {
            "domain": urlsplit(world.saleor.api_url).netloc,
            "saleorApiUrl": world.saleor.api_url,
            "id": world.app.id,
            "theme": theme,
            "locale": "en",
        }
        src = f"{world.kom_url}/app?{urlencode(query)}"
        html = _HOST_PAGE.replace("__SRC__", src.replace("&", "&amp;")).replace(
            "__KOM__", json.dumps(world.kom_url)
        )
        return HTMLResponse(html)

    async def mint(_: Request) -> Response:
        assert world.app is not None
        host.tokens_minted += 1
        return PlainTextResponse(
            world.saleor.mint_dashboard_token(world.app, user_permissions=host.permissions)
        )

    return Starlette(routes=[Route("/", page), Route("/token", mint)])


@contextlib.contextmanager
def dashboard_host(world: World, permissions: Sequence[str] = ALL_PERMISSIONS) -> Iterator[Host]:
    host = Host(world, permissions=list(permissions))
    # Its own port is its own origin: KOM's page talks to it cross-origin, as to the real Dashboard.
    with serve_in_thread(_host_app(host)) as url:
        host.url = url
        yield host


@contextlib.asynccontextmanager
async def launch() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_dashboard(browser: Browser, host: Host, theme: str = "light") -> tuple[Page, Frame]:
    """The stand-in Dashboard with KOM framed in it, once the handshake is done."""
    page = await browser.new_page(viewport=VIEWPORT, color_scheme="light" if theme == "light" else "dark")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Script errors only: a refused request (the 422 of a form with errors) is logged too.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(host.page_url(theme))
    frame = page.frame_locator("#app")
    await frame.locator("#app[data-ready='true']").wait_for(timeout=15_000)
    handle = await page.query_selector("#app")
    assert handle is not None
    content = await handle.content_frame()
    assert content is not None
    return page, content


async def received(page: Page) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = await page.evaluate("window.received")
    return messages


async def screenshot(page: Page, frame: Frame, name: str) -> Path | None:
    """The framed page at its full height (so long views are whole)."""
    folder = screenshot_dir()
    if folder is None:
        return None
    height = await frame.evaluate(
        "window.scrollTo(0, 0), Math.ceil(document.getElementById('app').getBoundingClientRect().bottom)"
    )
    await page.set_viewport_size({"width": VIEWPORT["width"], "height": max(int(height), 480)})
    await frame.evaluate("document.fonts.ready.then(() => true)")
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), animations="disabled", caret="hide")
    await page.set_viewport_size(VIEWPORT)
    return path
