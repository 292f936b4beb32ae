"""The merchant's page inside the Saleor dashboard (settings, connection test, allocation view)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def dashboard_routes() -> list[BaseRoute]:
    return []
