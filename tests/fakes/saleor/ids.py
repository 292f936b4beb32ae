"""Saleor's global ids: ``base64("<Type>:<pk>")`` with padding (graphene's ``to_global_id``)."""

from __future__ import annotations

import base64
import binascii

__all__ = ["from_global_id", "to_global_id"]


def to_global_id(type_name: str, pk: object) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def from_global_id(global_id: str, expected_type: str) -> str:
    """The pk inside ``global_id``; ``ValueError`` if it is malformed or of another type."""
    try:
        decoded = base64.b64decode(global_id.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"Invalid ID: {global_id}. Expected: {expected_type}.") from None
    type_name, sep, pk = decoded.partition(":")
    if not sep or type_name != expected_type or not pk:
        raise ValueError(f"Invalid ID: {global_id}. Expected: {expected_type}.")
    return pk
