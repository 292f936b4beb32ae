"""A TRANSACTION_{CHARGE,REFUND,CANCELATION}_REQUESTED as KOM records it: checked, and named.

Two names, for two purposes:

- ``psp_reference`` is the request's identity towards Saleor: KOM answers with it and
  reports the outcome with it. Saleor sends a new payload (a new ``issuedAt``) for every
  request, also when the merchant requests the same granted refund again after KOM refused
  it; a re-delivery of one request is byte-identical (saleor-protocol.md 3.4). Saleor
  deduplicates events by (pspReference, type, amount), so a second request for the same
  grant needs a pspReference of its own: it is short and derived from what Saleor sent
  (``kom-refund-7-K3Q9ZD``: grant 7, a hash of ``issuedAt``), the same for a re-delivery.
  Requests recorded under the older, longer form keep it (the store matches a re-delivery
  by kind, request id and time), so their outcomes are reported as before.
- ``request_id`` is what KOM acts on. For a granted refund that is the grant: its provider
  refund references (and idempotency keys) derive from it, so a grant requested again
  never refunds twice what was sent for it already.

The request also names its transaction (one of possibly several KOM payments on the order),
which the worker reports the outcome on.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.saleor.payloads import (
    PayloadError,
    TransactionChargeRequested,
    TransactionRefundRequested,
    TransactionRequest,
    check_action,
    refund_request_from,
)
from plugin.domain.references import short_hash
from plugin.service.requests import refund_to_json

__all__ = ["SaleorRequest", "read_request"]


@dataclass(frozen=True)
class SaleorRequest:
    kind: str  # refund | charge | cancel
    request_id: str
    psp_reference: str
    transaction_id: str
    order_id: str
    order_number: str | None
    issued_at: datetime
    body: dict[str, Any]


def read_request(event: str, payload: TransactionRequest) -> SaleorRequest:
    """The request in ``payload`` (of sync ``event``); ``PayloadError`` says why it cannot be acted on."""
    transaction = payload.transaction
    if transaction is None or transaction.order is None:
        raise PayloadError(f"{event.lower()} names no transaction on an order")
    if isinstance(payload, TransactionRefundRequested):
        refund = refund_request_from(payload)
        kind, request_id, body = "refund", refund.id, refund_to_json(refund)
        psp_reference = _refund_psp(request_id, refund.created_at, payload.granted_refund is not None)
    else:
        amount = check_action(payload, event)
        kind = "charge" if isinstance(payload, TransactionChargeRequested) else "cancel"
        assert payload.issued_at is not None  # check_action refuses a request without it
        request_id = f"{transaction.id}:{payload.issued_at.isoformat()}:{amount}"
        psp_reference = f"kom-{kind}-{short_hash(request_id, 10)}"
        body = {"amount": amount, "currency": payload.action.currency}
    assert payload.issued_at is not None
    return SaleorRequest(
        kind=kind,
        request_id=request_id,
        psp_reference=psp_reference,
        transaction_id=transaction.id,
        order_id=transaction.order.id,
        order_number=transaction.order.number,
        issued_at=payload.issued_at,
        body=body,
    )


def _refund_psp(request_id: str, issued_at: datetime, granted: bool) -> str:
    """``kom-refund-<grant>-<hash of issuedAt>`` for a granted refund, else ``kom-refund-<hash>``.

    An amount-only refund's id is already a hash of its transaction, ``issuedAt`` and amount.
    """
    if not granted:
        return f"kom-refund-{short_hash(request_id, 10)}"
    return f"kom-refund-{_grant_number(request_id)}-{short_hash(issued_at.isoformat(), 6)}"


def _grant_number(grant_id: str) -> str:
    """Saleor's global id ``OrderGrantedRefund:7`` (base64) -> ``7``; another id -> a short hash."""
    try:
        decoded = base64.b64decode(grant_id, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    kind, _, number = decoded.partition(":")
    return number if kind == "OrderGrantedRefund" and number.isdigit() else short_hash(grant_id, 8)
