"""The manifest's ``homepageUrl`` (``/``) and ``supportUrl`` (``/support``): two small pages.

Saleor links them from the app's details; a merchant or an operator who follows them lands
on what KOM is, how to install it, and where to look when something is off. Links are
relative, so a KOM served under a path prefix (``https://host/kom``) links within itself.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from plugin import __version__

TITLE = "KOM – Klarna & Kustom Order Management"

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "code,pre{background:#f3f3f3;padding:.1rem .3rem;border-radius:4px}pre{padding:.6rem;overflow-x:auto}"
    "@media (prefers-color-scheme:dark){body{background:#1b1b1b;color:#ddd}code,pre{background:#2a2a2a}"
    "a{color:#8ab4f8}}"
)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}<p><small>KOM {escape(__version__)}</small></p></main></body></html>"
    )


def _manifest_url(request: Request) -> str:
    public: str = request.app.state.services.settings.public_url
    return f"{public}/api/manifest"


async def home(request: Request) -> Response:
    manifest = escape(_manifest_url(request))
    return _page(
        TITLE,
        f"<h1>{escape(TITLE)}</h1>"
        "<p>KOM captures each Saleor fulfillment as its own Klarna or Kustom Order Management capture "
        "(one invoice per parcel) and books every refund on the invoice that shipped the goods.</p>"
        "<h2>Install it</h2>"
        "<p>In the Saleor dashboard: <b>Apps → Install external app</b>, with this manifest URL:</p>"
        f"<pre>{manifest}</pre>"
        "<p>Then enter the merchant's Klarna or Kustom credentials on KOM's page "
        "(<b>Apps → KOM → Settings</b>) and press <b>Test connection</b>.</p>"
        '<p><a href="support">Support</a></p>',
    )


async def support(request: Request) -> Response:
    return _page(
        f"Support – {TITLE}",
        "<h1>KOM support</h1>"
        "<h2>In the Saleor dashboard</h2><ul>"
        "<li><b>Apps → KOM → Activity</b> lists the orders KOM handled. An order that needs attention "
        "says why, with the provider's correlation id: quote it when you contact Klarna or Kustom.</li>"
        "<li><b>Settings → Test connection</b> says exactly what is wrong with the credentials, "
        "the environment or the region.</li>"
        "<li>Each capture and refund appears on the order's payment as an event naming the invoice.</li>"
        "</ul>"
        "<h2>For whoever runs this KOM</h2><ul>"
        "<li><code>kom check</code> prints the configuration and every problem with it.</li>"
        "<li><code>/readyz</code> says whether the database is reachable and its schema current; "
        "<code>/metrics</code> has the queue and the provider calls.</li>"
        "<li>The runbook is <code>docs/operations.md</code> in KOM's repository.</li>"
        "</ul>"
        '<p><a href="./">About KOM</a></p>',
    )


def page_routes() -> list[Route]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/support", support, methods=["GET"]),
    ]
