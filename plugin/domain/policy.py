"""Merchant choices that change what the planner does. Every field has a safe default."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ShippingFeePolicy(StrEnum):
    FIRST_PARCEL = "first_parcel"
    """Capture the shipping fee with the first parcel (the shopper pays it up front)."""
    LAST_PARCEL = "last_parcel"
    """Capture it with the parcel that completes the order (never, if it never completes)."""


class OriginPolicy(StrEnum):
    """Which capture returned goods are booked on when the platform does not say."""

    EARLIEST_FIRST = "earliest_first"
    LATEST_FIRST = "latest_first"


@dataclass(frozen=True)
class Policy:
    shipping_fee: ShippingFeePolicy = ShippingFeePolicy.FIRST_PARCEL
    unknown_origin: OriginPolicy = OriginPolicy.EARLIEST_FIRST
    capture_shipments: bool = True
    """False: never capture on a shipment (the merchant captures from the dashboard)."""
