"""The JSON API behind the dashboard page (``/api/dashboard/...``).

Every endpoint authenticates the Dashboard token first (``auth.py``); errors are
``{"error": "..."}`` with 401 / 403 / 404 / 422 (422 adds ``"fields": {name: message}``).
Nothing here ever returns a credential: a saved API key shows as ``api_key_set`` and a
four-character ``api_key_hint``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin.composition import Services
from plugin.service.records import ChannelSettings
from plugin.web.body import read_capped
from plugin.web.dashboard import activity
from plugin.web.dashboard.allocation import order_view
from plugin.web.dashboard.auth import (
    ACTIVITY_PERMISSIONS,
    RETRY_PERMISSIONS,
    SETTINGS_PERMISSIONS,
    Caller,
    authenticate,
)
from plugin.web.dashboard.settings_form import CHANNEL, check_form, public_view

log = logging.getLogger("kom.dashboard")

MAX_FORM = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store"}


def api_routes() -> list[Route]:
    prefix = "/api/dashboard"
    return [
        Route(f"{prefix}/me", me, methods=["GET"]),
        Route(f"{prefix}/settings", get_settings, methods=["GET"]),
        Route(f"{prefix}/settings", put_settings, methods=["PUT"]),
        Route(f"{prefix}/settings", delete_settings, methods=["DELETE"]),
        Route(f"{prefix}/test-connection", test_connection, methods=["POST"]),
        Route(f"{prefix}/orders", list_orders, methods=["GET"]),
        Route(f"{prefix}/orders/{{order_id:path}}/retry", retry_order, methods=["POST"]),
        Route(f"{prefix}/orders/{{order_id:path}}", get_order, methods=["GET"]),
    ]


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _caller(request: Request, permissions: tuple[str, ...] = ()) -> tuple[Services, Caller]:
    services = _services(request)
    caller = await authenticate(request, services)
    caller.require(permissions)
    return services, caller


def _channel(request: Request) -> str:
    channel = request.query_params.get("channel", "").strip()
    if not CHANNEL.fullmatch(channel):
        raise HTTPException(422, "A channel is its slug: letters, digits, '-' and '_'.")
    return channel


async def _form(request: Request) -> Any:
    body = await read_capped(request, MAX_FORM)
    try:
        return json.loads(body or b"{}")
    except ValueError as exc:
        raise HTTPException(422, "The body must be JSON.") from exc


async def me(request: Request) -> Response:
    """Who the page is talking for, and what the page may show them."""
    _, caller = await _caller(request)
    return _json(
        {
            "email": caller.email,
            "can": {
                "settings": caller.may(SETTINGS_PERMISSIONS),
                "activity": caller.may(ACTIVITY_PERMISSIONS),
                "retry": caller.may(RETRY_PERMISSIONS),
            },
            "required": {
                "settings": list(SETTINGS_PERMISSIONS),
                "activity": list(ACTIVITY_PERMISSIONS),
                "retry": list(RETRY_PERMISSIONS),
            },
        }
    )


async def _own_settings(services: Services, installation_id: int, channel: str) -> ChannelSettings | None:
    """The channel's own row (settings_for falls back to the default, which is not "its own")."""
    found = await services.store.settings_for(installation_id, channel)
    return found if found is not None and found.channel == channel else None


async def _settings_body(services: Services, installation_id: int, channel: str) -> dict[str, Any]:
    own = await _own_settings(services, installation_id, channel)
    default = await _own_settings(services, installation_id, "") if channel else own
    view = public_view(own or default)
    if own is None:  # a new channel override needs credentials of its own
        view.update(api_key_set=False, api_key_hint=None)
    return {
        "channel": channel,
        "configured": own is not None,
        "inherits_default": own is None and bool(channel) and default is not None,
        "default_configured": default is not None,
        "settings": view,
        "channels": await activity.configured_channels(services.store, installation_id),
    }


async def get_settings(request: Request) -> Response:
    services, caller = await _caller(request, SETTINGS_PERMISSIONS)
    return _json(await _settings_body(services, caller.installation.id, _channel(request)))


async def put_settings(request: Request) -> Response:
    services, caller = await _caller(request, SETTINGS_PERMISSIONS)
    channel = _channel(request)
    installation_id = caller.installation.id
    stored = await _own_settings(services, installation_id, channel)
    checked = check_form(await _form(request), channel, stored)
    if checked.settings is None:
        return _json(
            {"error": "Some settings need your attention.", "fields": checked.errors},
            status=422,
        )
    await services.store.save_settings(installation_id, checked.settings)
    log.info(
        "settings for channel %r of %s saved by %s",
        channel or "(default)",
        caller.installation.api_url,
        caller.email or caller.user_id,
    )
    return _json(await _settings_body(services, installation_id, channel))


async def delete_settings(request: Request) -> Response:
    """Remove a channel's own settings so it uses the default again (the default stays)."""
    services, caller = await _caller(request, SETTINGS_PERMISSIONS)
    channel = _channel(request)
    if not channel:
        raise HTTPException(422, "The default settings cannot be removed; change them instead.")
    if not await activity.delete_channel_settings(services.store, caller.installation.id, channel):
        raise HTTPException(404, f"Channel {channel} has no settings of its own.")
    log.info(
        "settings for channel %r of %s removed by %s", channel, caller.installation.api_url, caller.email
    )
    return _json({"channel": channel, "removed": True})


async def test_connection(request: Request) -> Response:
    """Check the submitted (unsaved) form against the provider; the saved key fills a blank one."""
    services, caller = await _caller(request, SETTINGS_PERMISSIONS)
    channel = _channel(request)
    stored = await _own_settings(services, caller.installation.id, channel)
    checked = check_form(await _form(request), channel, stored)
    if checked.settings is None:
        return _json({"error": "Some settings need your attention.", "fields": checked.errors}, status=422)
    result = await services.check_connection(checked.settings)
    log.info(
        "connection test for channel %r of %s: %s",
        channel or "(default)",
        caller.installation.api_url,
        result.outcome,
    )
    return _json(result.as_json())


async def list_orders(request: Request) -> Response:
    services, caller = await _caller(request, ACTIVITY_PERMISSIONS)
    state = request.query_params.get("state") or None
    if state is not None and state not in activity.STATES:
        raise HTTPException(422, f"state must be one of {', '.join(activity.STATES)}.")
    page_text = request.query_params.get("page", "1")
    if not page_text.isdigit() or not 1 <= int(page_text) <= 100_000:
        raise HTTPException(422, "page must be a positive number.")
    return _json(await activity.order_page(services.store, caller.installation.id, state, int(page_text)))


async def get_order(request: Request) -> Response:
    services, caller = await _caller(request, ACTIVITY_PERMISSIONS)
    order_id = request.path_params["order_id"]
    job = await services.store.order_job(caller.installation.id, order_id)
    if job is None:
        raise HTTPException(404, "KOM has not handled this order.")
    return _json(await order_view(services, caller.installation, job))


async def retry_order(request: Request) -> Response:
    services, caller = await _caller(request, RETRY_PERMISSIONS)
    order_id = request.path_params["order_id"]
    if not await services.store.retry_now(caller.installation.id, order_id):
        raise HTTPException(404, "KOM has not handled this order.")
    log.info("order %s of %s: retry requested by %s", order_id, caller.installation.api_url, caller.email)
    job = await services.store.order_job(caller.installation.id, order_id)
    assert job is not None
    return _json({"order": activity.job_view(job)})
