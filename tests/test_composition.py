"""Adapters are found through Python entry points, KOM's own ones included."""

from __future__ import annotations

import pytest

from adapters.klarna.provider import from_settings
from adapters.saleor.platform import SaleorPlatform
from plugin.composition import load_adapter
from plugin.service.worker import Permanent


def test_kom_registers_its_adapters_like_a_third_party_would() -> None:
    assert load_adapter("kom.platforms", "saleor") == SaleorPlatform.for_installation
    assert load_adapter("kom.providers", "klarna") is from_settings
    assert load_adapter("kom.providers", "kustom") is from_settings


def test_an_adapter_that_is_not_installed_is_a_clear_permanent_failure() -> None:
    with pytest.raises(
        Permanent, match=r"No adapter 'shopify' is installed for kom.platforms \(installed: saleor\)"
    ):
        load_adapter("kom.platforms", "shopify")
