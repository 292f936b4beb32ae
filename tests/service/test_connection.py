"""The Test connection use case: one result type for the page and `kom configure --test`, and a
probe that breaks is a failed test with a sentence, never an exception. (The Klarna probe's
outcomes are tested over HTTP in tests/dashboard/test_api.py and tests/test_configure.py.)"""

from __future__ import annotations

from plugin.service.connection import ConnectionResult, check_connection
from plugin.service.records import ChannelSettings

CHANNEL = ChannelSettings("", "klarna", "playground", "eu", "klarna_test_api_a2V5", None, None)


async def test_the_probes_answer_is_the_result() -> None:
    ok = ConnectionResult(True, "ok", "Connected.", "https://api.playground.klarna.com")

    async def probe(settings: ChannelSettings) -> ConnectionResult:
        assert settings is CHANNEL
        return ok

    assert await check_connection(CHANNEL, probe) is ok


async def test_a_broken_probe_is_a_failed_test() -> None:
    async def probe(settings: ChannelSettings) -> ConnectionResult:
        raise KeyError("region")

    result = await check_connection(CHANNEL, probe)
    assert not result.ok and result.outcome == "error"
    assert result.message == "KOM could not run the connection test (KeyError); see KOM's log."
