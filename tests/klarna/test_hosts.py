"""Base URLs per provider, environment and region (klarna-api.md §2.1)."""

from __future__ import annotations

import pytest

from adapters.klarna.hosts import Environment, Provider, Region, base_url

KLARNA, KUSTOM = Provider.KLARNA, Provider.KUSTOM
LIVE, TEST = Environment.PRODUCTION, Environment.PLAYGROUND


@pytest.mark.parametrize(
    ("provider", "environment", "region", "expected"),
    [
        (KLARNA, LIVE, Region.EU, "https://api.klarna.com"),
        (KLARNA, LIVE, Region.NA, "https://api-na.klarna.com"),
        (KLARNA, LIVE, Region.OC, "https://api-oc.klarna.com"),
        (KLARNA, TEST, Region.EU, "https://api.playground.klarna.com"),
        (KLARNA, TEST, Region.NA, "https://api-na.playground.klarna.com"),
        (KLARNA, TEST, Region.OC, "https://api-oc.playground.klarna.com"),
        (KUSTOM, LIVE, Region.EU, "https://api.kustom.co"),
        (KUSTOM, TEST, Region.EU, "https://api.playground.kustom.co"),
    ],
)
def test_published_hosts(provider: Provider, environment: Environment, region: Region, expected: str) -> None:
    assert base_url(provider, environment, region) == expected


def test_region_defaults_to_eu() -> None:
    assert base_url(KUSTOM, TEST) == "https://api.playground.kustom.co"


def test_plain_strings_are_accepted() -> None:
    assert base_url("klarna", "production", "na") == "https://api-na.klarna.com"  # type: ignore[arg-type]


@pytest.mark.parametrize("region", [Region.NA, Region.OC])
def test_kustom_has_no_regional_hosts(region: Region) -> None:
    with pytest.raises(ValueError, match=rf"kustom has no {region.value.upper()} region.*api\.kustom\.co"):
        base_url(KUSTOM, LIVE, region)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://proxy.example/klarna//", "https://proxy.example/klarna"),
        (" https://api.klarna.com ", "https://api.klarna.com"),
    ],
)
def test_override_wins_and_loses_its_trailing_slash(override: str, expected: str) -> None:
    # Even for a combination the table does not have.
    assert base_url(KUSTOM, LIVE, Region.OC, override=override) == expected


@pytest.mark.parametrize(
    "override",
    ["ftp://api.klarna.com", "api.klarna.com", "https://", "", "https://api.klarna.com/?x=1"],
)
def test_override_must_be_an_http_url(override: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        base_url(KLARNA, LIVE, override=override)


def test_override_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="user info") as caught:
        base_url(KLARNA, LIVE, override="https://merchant:klarna_test_api_s3cret@api.klarna.com")
    assert "s3cret" not in str(caught.value)
