"""The manifest's homepageUrl and supportUrl answer 200 with a small page, under KOM's public
URL (a path prefix included), and the home page says which manifest URL to paste into Saleor."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapters.saleor.manifest import build_manifest
from plugin import __version__
from plugin.settings import Settings
from plugin.web.app import create_app

SECRET = "pages-test-secret-0123456789abcdef"


@pytest.mark.parametrize("public_url", ["https://kom.example.com", "https://example.com/kom"])
async def test_homepage_and_support_pages_answer(tmp_path: Path, public_url: str) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'kom.db'}",
        secret_key=SECRET,  # type: ignore[arg-type]
        public_url=public_url,
    )
    app = create_app(settings, run_worker=False)
    manifest = build_manifest(public_url, __version__)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kom") as client:
            pages = {}
            for key in ("homepageUrl", "supportUrl"):
                path = manifest[key].removeprefix(public_url) or "/"  # a proxy strips the prefix
                response = await client.get(path)
                assert response.status_code == 200, key
                assert response.headers["content-type"].startswith("text/html")
                pages[key] = response.text
    assert f"<pre>{public_url}/api/manifest</pre>" in pages["homepageUrl"]
    assert 'href="support"' in pages["homepageUrl"] and 'href="./"' in pages["supportUrl"]
    assert "kom check" in pages["supportUrl"] and "correlation id" in pages["supportUrl"]


def test_serve_says_where_to_install_and_warns_of_a_wrong_port(caplog: pytest.LogCaptureFixture) -> None:
    from plugin.runtime import announce

    caplog.set_level("INFO", logger="kom")
    announce(Settings(public_url="https://kom.example.com"), "0.0.0.0", 8000, worker=False)
    assert caplog.messages == [
        "KOM 0.1.0 listening on http://0.0.0.0:8000: web app only (run `kom worker` apart)",
        "install KOM in Saleor: Dashboard -> Apps -> Install external app, manifest URL "
        "https://kom.example.com/api/manifest",
    ]
    caplog.clear()
    announce(Settings(public_url="http://localhost:8000"), "0.0.0.0", 8000, worker=True)
    assert caplog.messages[-1].startswith("KOM_PUBLIC_URL is http://localhost:8000: only this machine")
    caplog.clear()
    announce(Settings(public_url="http://localhost:8000"), "127.0.0.1", 8001, worker=True)
    assert caplog.messages[-1].startswith(
        "KOM_PUBLIC_URL is http://localhost:8000 but KOM listens on port 8001: "
        "Saleor would call the wrong port"
    )
