"""Pydantic models of the Order Management wire format (OpenAPI 3.0.1 spec, klarna-api.md §1, §3).

Requests are built by KOM and checked against the spec's limits on construction; send
them as ``model_dump(mode="json", exclude_none=True)``. Responses ignore unknown fields
so that a newer API does not break parsing.

Line ``type`` and ``shipping_method`` are plain strings checked against the spec's
values only when *we* build a model: both lists have grown before (``return_fee``,
``PickUpWarehouse``), so responses are parsed with ``RESPONSE`` context, which skips
that check rather than failing on a value Klarna added later.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_AMOUNT = 200_000_000

# Pass as ``context=`` when validating provider responses (see module docstring).
RESPONSE: dict[str, Any] = {"kom_response": True}

LINE_TYPES = frozenset(
    {
        "physical",
        "discount",
        "shipping_fee",
        "sales_tax",
        "store_credit",
        "gift_card",
        "digital",
        "surcharge",
        "return_fee",
    }
)


class ShippingMethod(StrEnum):
    PICK_UP_STORE = "PickUpStore"
    HOME = "Home"
    BOX_REG = "BoxReg"
    BOX_UNREG = "BoxUnreg"
    PICK_UP_POINT = "PickUpPoint"
    OWN = "Own"
    POSTAL = "Postal"
    DHL_PACKSTATION = "DHLPackstation"
    DIGITAL = "Digital"
    UNDEFINED = "Undefined"
    PICK_UP_WAREHOUSE = "PickUpWarehouse"
    CLICK_COLLECT = "ClickCollect"
    PALLET_DELIVERY = "PalletDelivery"


SHIPPING_METHODS = frozenset(method.value for method in ShippingMethod)


def _text(limit: int) -> Any:
    return Field(default=None, max_length=limit)


def _is_response(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("kom_response"))


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Amount = Annotated[int, Field(le=MAX_AMOUNT)]


class OrderLine(_Wire):
    """``order_line``: one line of a capture, refund or order."""

    reference: str | None = _text(255)
    name: str = Field(max_length=255)
    type: str | None = None
    quantity: int = Field(ge=0)
    quantity_unit: str | None = _text(10)
    unit_price: Amount
    tax_rate: int | None = Field(default=None, ge=0)
    total_amount: Amount
    total_discount_amount: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    total_tax_amount: Amount | None = None
    merchant_data: str | None = _text(1024)
    product_url: str | None = _text(1024)
    image_url: str | None = _text(1024)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in LINE_TYPES and not _is_response(info):
            raise ValueError(f"order line type must be one of {sorted(LINE_TYPES)}")
        return value


class ShippingInfo(_Wire):
    """``shipping_info``: carrier and tracking of a capture."""

    shipping_company: str | None = _text(100)
    shipping_method: str | None = None
    tracking_number: str | None = _text(100)
    tracking_uri: str | None = _text(1024)
    return_shipping_company: str | None = _text(100)
    return_tracking_number: str | None = _text(100)
    return_tracking_uri: str | None = _text(1024)

    @field_validator("shipping_method")
    @classmethod
    def _known_method(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in SHIPPING_METHODS and not _is_response(info):
            raise ValueError(f"shipping_method must be one of {sorted(SHIPPING_METHODS)}")
        return value


class CaptureRequest(_Request):
    """``CaptureObject``: body of ``POST /captures``."""

    captured_amount: int = Field(ge=0, le=MAX_AMOUNT)
    description: str | None = _text(255)
    reference: str | None = _text(255)
    order_lines: list[OrderLine] | None = Field(default=None, max_length=1000)
    shipping_info: list[ShippingInfo] | None = Field(default=None, max_length=500)
    shipping_delay: int | None = Field(default=None, ge=0)


class RefundRequest(_Request):
    """``RefundObject``: body of ``POST /refunds``."""

    refunded_amount: int = Field(ge=0, le=MAX_AMOUNT)
    description: str | None = _text(255)
    reference: str | None = _text(255)
    order_lines: list[OrderLine] | None = Field(default=None, max_length=1000)


class ShippingInfoUpdate(_Request):
    """``UpdateShippingInfo``: body of ``POST /captures/{id}/shipping-info``."""

    shipping_info: list[ShippingInfo] = Field(min_length=1, max_length=500)


class Capture(_Wire):
    """A capture as returned inside an order or by ``GET /captures/{id}``."""

    capture_id: str
    klarna_reference: str | None = None
    captured_amount: int
    captured_at: str | None = None  # ISO 8601; parsed leniently by mapping
    description: str | None = None
    reference: str | None = None
    refunded_amount: int | None = None
    order_lines: list[OrderLine] = []
    shipping_info: list[ShippingInfo] = []


class Refund(_Wire):
    """A refund as returned inside an order or by ``GET /refunds/{id}``."""

    refund_id: str
    refunded_amount: int
    refunded_at: str | None = None
    description: str | None = None
    reference: str | None = None
    credit_invoice: bool | None = None
    order_lines: list[OrderLine] = []


class Order(_Wire):
    """``MerchantOrderDto``: the body of ``GET /ordermanagement/v1/orders/{id}``."""

    order_id: str
    status: str  # AUTHORIZED, PART_CAPTURED, CAPTURED, CANCELLED, EXPIRED, CLOSED
    purchase_currency: str
    purchase_country: str | None = None
    fraud_status: str | None = None
    locale: str | None = None
    order_amount: int | None = None
    original_order_amount: int | None = None
    captured_amount: int | None = None
    refunded_amount: int | None = None
    remaining_authorized_amount: int | None = None
    order_lines: list[OrderLine] = []
    captures: list[Capture] = []
    refunds: list[Refund] = []
    shipping_info: list[ShippingInfo] = []
    created_at: str | None = None
    expires_at: str | None = None
    klarna_reference: str | None = None
    merchant_reference1: str | None = None
    merchant_reference2: str | None = None
    merchant_data: str | None = None


class ErrorBody(_Wire):
    """``ErrorMessageDto``: the body of every 4xx/5xx answer (when it is JSON)."""

    error_code: str | None = None
    error_messages: list[str] = []
    correlation_id: str | None = None
