"""Validate request/response bodies against the shared Order Management OpenAPI spec.

Reusable from any test: ``validate_request("CaptureObject", body)``. The spec lives outside
the repo (``<repo>/../shared/klarna``, or ``$KOM_SHARED_DIR/klarna``); without it the
calling test is skipped, except under ``CI=true``, where a missing spec is a failure.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_NAME = "order-management-api-openapi.yml"
_SPEC_URI = "urn:kom:klarna-order-management"


def spec_path() -> Path:
    shared = os.environ.get("KOM_SHARED_DIR")
    root = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared"
    return root / "klarna" / SPEC_NAME


def validate_request(schema_name: str, body: dict[str, Any]) -> None:
    """Fail (AssertionError listing every violation) unless ``body`` matches the named schema.

    ``schema_name`` is a key of ``#/components/schemas``; response schemas such as
    ``MerchantOrderDto`` work too.
    """
    reference = {"$ref": f"{_SPEC_URI}#/components/schemas/{schema_name}"}
    validator = OAS30Validator(reference, registry=_registry(), format_checker=oas30_format_checker)
    problems = [
        f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message}"
        for error in validator.iter_errors(body)
    ]
    assert not problems, f"body does not match {schema_name}:\n" + "\n".join(problems)


def schema(schema_name: str) -> dict[str, Any]:
    """One cleaned component schema, e.g. to read its limits in a test."""
    components: dict[str, Any] = _spec()["components"]["schemas"]
    if schema_name not in components:
        raise KeyError(f"the spec has no schema named {schema_name!r}")
    result: dict[str, Any] = components[schema_name]
    return result


def _spec() -> dict[str, Any]:
    path = spec_path()
    if not path.is_file():
        reason = f"Order Management OpenAPI spec not found at {path} (set KOM_SHARED_DIR to the shared dir)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the contract tests.")
        pytest.skip(reason)
    return _load(str(path))


@functools.cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    _drop_enum_artefacts(document)
    return document


@functools.cache
def _registry_for(path: str) -> Registry[Any]:
    resource: Resource[Any] = DRAFT4.create_resource(_load(path))
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
    return registry


def _registry() -> Registry[Any]:
    _spec()  # skip / fail first when the file is missing
    return _registry_for(str(spec_path()))


def _drop_enum_artefacts(node: Any) -> None:
    """Remove ``enum`` lists the spec's conversion left behind that would reject valid data.

    - ``enum: [null]`` on integer fields (Addon.price, SelectedShippingOptionDto.tax_rate, ...):
      no integer can ever equal null, so these forbid every value.
    - ``order_line.type`` has ``enum: ["physical|discount|..."]``: the regex pasted as the
      single enum value. The sibling ``pattern`` already says the same thing properly.
    """
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and len(enum) == 1 and (enum[0] is None or enum[0] == node.get("pattern")):
            del node["enum"]
        for value in node.values():
            _drop_enum_artefacts(value)
    elif isinstance(node, list):
        for item in node:
            _drop_enum_artefacts(item)


def order_example() -> dict[str, Any]:
    """A ``GET /orders/{id}`` body shaped like Klarna's: a part-captured order with one
    capture (tracked) and three refunds, two of them amount-only goodwill refunds."""
    sku1 = {
        "reference": "SKU-1",
        "name": "Walnut desk lamp",
        "type": "physical",
        "quantity": 2,
        "quantity_unit": "pcs.",
        "unit_price": 5000,
        "tax_rate": 2500,
        "total_amount": 9000,
        "total_discount_amount": 1000,
        "total_tax_amount": 1800,
    }
    sku2 = {
        **sku1,
        "reference": "SKU-2",
        "name": "Brass bulb",
        "quantity": 1,
        "unit_price": 2500,
        "total_amount": 2500,
        "total_discount_amount": 0,
        "total_tax_amount": 500,
    }
    discount = {
        "reference": "DISCOUNT-10",
        "name": "Spring sale",
        "type": "discount",
        "quantity": 1,
        "unit_price": -1000,
        "tax_rate": 2500,
        "total_amount": -1000,
        "total_tax_amount": -200,
    }
    shipping = {
        "reference": "SHIPPING",
        "name": "DHL Home",
        "type": "shipping_fee",
        "quantity": 1,
        "unit_price": 495,
        "tax_rate": 2500,
        "total_amount": 495,
        "total_tax_amount": 99,
    }
    goodwill = {
        "reference": "kom-goodwill",
        "name": "Late delivery",
        "type": "physical",
        "quantity": 1,
        "unit_price": 500,
        "tax_rate": 0,
        "total_amount": 500,
        "total_tax_amount": 0,
        "merchant_data": "kom:goodwill",
    }
    return {
        "order_id": "f3392f8b-6116-4073-ab96-e330819e2c07",
        "status": "PART_CAPTURED",
        "fraud_status": "ACCEPTED",
        "order_amount": 20990,
        "original_order_amount": 20990,
        "captured_amount": 10995,
        "refunded_amount": 3300,
        "remaining_authorized_amount": 9995,
        "purchase_country": "de",
        "purchase_currency": "eur",
        "locale": "de-DE",
        "klarna_reference": "K4MADNY",
        "merchant_reference1": "10001",
        "created_at": "2025-01-10T10:25:40Z",
        "expires_at": "2025-02-07T10:25:40Z",
        "initial_payment_method": {"type": "INVOICE", "description": "Pay later"},
        "order_lines": [sku1, sku2, {**sku1, "reference": "SKU-3", "name": "Oak shelf"}, discount, shipping],
        "captures": [
            {
                "capture_id": "4ba29b50-be7b-44f5-a492-113e6a865e22",
                "klarna_reference": "K4MADNY-1",
                "captured_amount": 10995,
                "captured_at": "2025-01-11T08:00:00Z",
                "description": "Parcel 1 of order 10001",
                "reference": "10001-P1",
                "refunded_amount": 2500,
                "order_lines": [sku1, sku2, discount, shipping],
                "shipping_info": [
                    {"shipping_company": "DHL DE", "shipping_method": "Home", "tracking_number": "00340434"}
                ],
            }
        ],
        "refunds": [
            {
                "refund_id": "b2cb4f2e-2781-4359-80ad-555735ebb8d8",
                "refunded_amount": 2500,
                "refunded_at": "2025-01-20T15:17:40Z",
                "description": "Returned: Brass bulb",
                "reference": "10001-R1",
                "order_lines": [sku2],
            },
            {
                "refund_id": "8c3e3b7c-0d55-4c1e-9d83-0c8f8e1f3a10",
                "refunded_amount": 500,
                "refunded_at": "2025-01-21T09:00:00Z",
                "reference": "10001-R2",
                "order_lines": [goodwill],
            },
            {
                "refund_id": "0d4f2a9e-77b1-4a57-a7c5-5f4e2f0d9b11",
                "refunded_amount": 300,
                # Made before KOM marked lines: recognised by the name prefix only.
                "order_lines": [
                    {key: value for key, value in goodwill.items() if key != "merchant_data"}
                    | {"name": "Goodwill: scratched box", "total_amount": 300, "unit_price": 300}
                ],
            },
        ],
    }
