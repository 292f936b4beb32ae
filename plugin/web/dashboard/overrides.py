"""Provider base-URL overrides typed on the settings page: where KOM will send a merchant's key.

An override (a proxy, a test stand-in) replaces Klarna's or Kustom's own host, so it is
an address a dashboard user chooses and KOM then connects to with the merchant's
credentials. It must be https to a public address (``plugin.web.egress``); plain http and
non-public networks only where the operator allowed them (``KOM_ALLOWED_PRIVATE_NETWORKS``,
which the sandbox and the tests use). The connection test connects to the address checked
here, not to whatever the name resolves to a moment later.

(That a *saved* key is only sent to the endpoint it was saved for is checked by the form
itself: ``settings_form.check_form``.)
"""

from __future__ import annotations

import httpx

from adapters.klarna.connection import PROBE_TIMEOUT
from plugin.composition import Services
from plugin.service.connection import ConnectionResult
from plugin.web.dashboard.settings_form import Checked
from plugin.web.egress import Egress, EgressRefused, Target, egress

__all__ = ["check_override", "field_errors", "probe"]


async def check_override(url: str, policy: Egress) -> Target:
    """The checked target of an override, or ValueError with the sentence for the ``base_url`` field."""
    try:
        target = await policy.check(url)
    except EgressRefused as exc:
        raise ValueError(exc.reason) from None
    if httpx.URL(url).scheme != "https" and not policy.operator_allowed(target.addresses):
        raise ValueError(
            "A base URL override must use https:// (plain http only to networks the operator "
            "allowed with KOM_ALLOWED_PRIVATE_NETWORKS)."
        )
    return target


async def field_errors(checked: Checked, services: Services) -> dict[str, str]:
    """``{"base_url": why}`` when the form's override may not be used, else ``{}``."""
    assert checked.settings is not None
    if checked.settings.base_url is None:
        return {}
    try:
        await check_override(checked.settings.base_url, egress(services))
    except ValueError as exc:
        return {"base_url": str(exc)}
    return {}


async def probe(checked: Checked, services: Services) -> ConnectionResult | dict[str, str]:
    """Run the connection test (pinned to the checked override), or the field errors instead."""
    settings = checked.settings
    assert settings is not None
    # The region search sends the credentials to Klarna's other regions: only a key typed
    # now goes there, never a saved one (it goes to the endpoint it was saved for only).
    search = not checked.secret_from_store
    if settings.base_url is None:
        return await services.check_connection(settings, other_regions=search)
    policy = egress(services)
    try:
        target = await check_override(settings.base_url, policy)
    except ValueError as exc:
        return {"base_url": str(exc)}
    async with policy.client(target, timeout=PROBE_TIMEOUT) as pinned:
        return await services.check_connection(settings, http=pinned, other_regions=search)
