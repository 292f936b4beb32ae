"""**Test connection**: do the merchant's credentials work at the endpoint they chose?

One use case for the dashboard's *Test connection* and `kom configure --test`, so both say
the same thing. The provider adapter does the probing (``ConnectionProbe``, registered
under the entry point group ``kom.connection_probes`` like providers are); this layer only
knows the result and keeps a probe's unexpected failure from becoming a 500 or a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Protocol

from plugin.service.records import ChannelSettings

log = logging.getLogger("kom.connection")


@dataclass(frozen=True)
class ConnectionResult:
    """``outcome``: ok, unreachable, wrong_credentials, wrong_region, rate_limited, unavailable,
    not_order_management, rejected or error; ``message`` is the sentence shown to the merchant."""

    ok: bool
    outcome: str
    message: str
    endpoint: str
    status: int | None = None
    error_code: str | None = None
    correlation_id: str | None = None
    suggested_region: str | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class ConnectionProbe(Protocol):
    """Tries ``settings`` against the provider without touching a real order."""

    async def __call__(self, settings: ChannelSettings) -> ConnectionResult: ...


async def check_connection(settings: ChannelSettings, probe: ConnectionProbe) -> ConnectionResult:
    """The probe's answer; a probe that breaks is reported as a failed test, not raised."""
    try:
        return await probe(settings)
    except Exception as exc:
        log.exception(
            "connection test for %s %s failed unexpectedly", settings.provider, settings.environment
        )
        return ConnectionResult(
            False,
            "error",
            f"KOM could not run the connection test ({type(exc).__name__}); see KOM's log.",
            settings.base_url or "",
        )
