"""Klarna / Kustom Order Management adapter: wire models, hosts, HTTP client, domain mapping.

Klarna and Kustom serve the same API under different hosts and credentials
(see ``hosts``); everything else here is shared.
"""

from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.hosts import Environment, Provider, Region, base_url

__all__ = ["Environment", "OrderManagementClient", "Provider", "Region", "RetryPolicy", "base_url"]
