"""Stable, human-readable references for order lines, captures and refunds.

A capture line's reference is ``<TOKEN>/<parcel>``: TOKEN is the line's SKU (or its name
when it has none), followed by ``~<hash of the line id>`` only when two lines of the order
would otherwise share it; parcel is the capture's number on the provider order: its position,
or one past the highest number any captured line reference carries when that is higher (a
parcel captured after a later one, e.g. refused and then retried, takes a fresh number). So
the same order line shipped in two parcels gets ``TSHIRT-M/1`` and ``TSHIRT-M/2`` — unique
across all captures of the order whatever order they are made in, at most 64 characters,
and the same provider record always gives the same references. Refunds never build
references: they copy the ones the provider has on record for the capture (see refunds.py).
"""

from __future__ import annotations

import base64
import hashlib
import re

from plugin.domain.snapshot import Order

MAX_LINE_REFERENCE = 64
MAX_REFERENCE = 255
SHIPPING_TOKEN = "SHIPPING"
GIFT_CARD_TOKEN = "GIFTCARD"
_RESERVED = frozenset({SHIPPING_TOKEN, GIFT_CARD_TOKEN})
_BASE_MAX = 48  # leaves room for "~" + 6-char hash + "/" + parcel number within 64
_UNSAFE = re.compile(r"[\s/~\x00-\x1f\x7f]+")

CAPTURE_PREFIX = "kom:s:"
REFUND_PREFIX = "kom:r:"


def short_hash(value: str, length: int = 6) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.b32encode(digest).decode()[:length]


def _clean(text: str | None) -> str:
    return _UNSAFE.sub("-", text or "").strip("-")[:_BASE_MAX].strip("-")


def line_tokens(order: Order) -> dict[str, str]:
    """Map each order line id to its token; unique within the order."""
    bases = {line.id: _clean(line.sku) or _clean(line.name)[:24].upper() or "LINE" for line in order.lines}
    counts: dict[str, int] = {}
    for base in bases.values():
        counts[base] = counts.get(base, 0) + 1
    tokens: dict[str, str] = {}
    for line_id, base in bases.items():
        clash = counts[base] > 1 or base.upper() in _RESERVED
        tokens[line_id] = f"{base}~{short_hash(line_id)}" if clash else base
    if len(set(tokens.values())) != len(tokens):
        # Two lines with the same SKU and the same 30-bit hash prefix: lengthen, still deterministic.
        tokens = {line_id: f"{bases[line_id]}~{short_hash(line_id, 12)}" for line_id in bases}
    return tokens


def line_reference(token: str, parcel: int) -> str:
    reference = f"{token}/{parcel}"
    if len(reference) > MAX_LINE_REFERENCE:
        raise ValueError(f"line reference too long: {reference!r}")
    return reference


def parse_line_reference(reference: str | None) -> tuple[str, int] | None:
    """``"TSHIRT-M/2"`` -> ``("TSHIRT-M", 2)``; None for references KOM did not build."""
    if not reference or "/" not in reference:
        return None
    token, _, parcel = reference.rpartition("/")
    if not parcel.isdigit() or not token:
        return None
    return token, int(parcel)


def _bounded(prefix: str, identity: str) -> str:
    text = f"{prefix}{identity}"
    return text if len(text) <= MAX_REFERENCE else f"{prefix}#{short_hash(identity, 52)}"


def capture_reference(shipment_id: str) -> str:
    """The capture's own ``reference`` (settlement files): identifies the platform shipment."""
    return _bounded(CAPTURE_PREFIX, shipment_id)


def _request_token(request_id: str) -> str:
    # Capture ids are at most 36 characters; keep the whole reference within 255.
    return request_id if len(request_id) <= 180 else f"#{short_hash(request_id, 40)}"


def refund_reference_prefix(request_id: str) -> str:
    """Every provider refund made for one platform refund starts with this."""
    return f"{REFUND_PREFIX}{_request_token(request_id)}:"


def refund_reference(request_id: str, capture_key: str, parts: int) -> str:
    """One refund per (platform refund, capture): its identity survives retries and restarts.

    ``capture_key`` is the capture's own reference for KOM's captures (known before the
    capture exists, so a plan can refund out of a capture it is about to make) and the
    provider's capture id for captures made elsewhere. ``parts`` is how many refunds the
    platform refund was split into, so a finished one is recognised without recomputing it.
    """
    return f"{refund_reference_prefix(request_id)}{short_hash(capture_key, 10)}/{parts}"


def refund_parts(reference: str) -> int | None:
    """The ``parts`` recorded in a refund reference built by refund_reference."""
    _, _, parts = reference.rpartition("/")
    return int(parts) if parts.isdigit() else None
