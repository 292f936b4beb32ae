"""Shared pieces of the dashboard tests: Dashboard tokens and the API's headers."""

from __future__ import annotations

from collections.abc import Sequence

from tests.e2e.harness import World

ALL_PERMISSIONS = ("MANAGE_APPS", "HANDLE_PAYMENTS", "MANAGE_ORDERS")


def token(w: World, permissions: Sequence[str] = ALL_PERMISSIONS, **options: object) -> str:
    """A Dashboard app token for KOM's app, signed by the fake Saleor's real key."""
    assert w.app is not None
    return w.saleor.mint_dashboard_token(w.app, user_permissions=permissions, **options)  # type: ignore[arg-type]


def headers(w: World, bearer: str | None = None, *, api_url: str | None = None) -> dict[str, str]:
    """What the page sends: AppBridge's Authorization-Bearer and the Saleor API URL."""
    sent = {"Saleor-Api-Url": api_url or w.saleor.api_url}
    sent["Authorization-Bearer"] = bearer if bearer is not None else token(w)
    return sent
