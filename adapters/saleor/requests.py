"""A TRANSACTION_{CHARGE,REFUND,CANCELATION}_REQUESTED as KOM records it: checked, and named.

Two names, for two purposes:

- ``psp_reference`` is the request's identity towards Saleor: KOM answers with it and
  reports the outcome with it. Saleor sends a new payload (a new ``issuedAt``) for every
  request, also when the merchant requests the same granted refund again after KOM refused
  it; a re-delivery of one request is byte-identical (saleor-protocol.md 3.4). So the
  pspReference carries ``issuedAt``: new for a new request, the same for a re-delivery.
- ``request_id`` is what KOM acts on. For a granted refund that is the grant: its provider
  refund references (and idempotency keys) derive from it, so a grant requested again
  never refunds twice what was sent for it already.

The request also names its transaction (one of possibly several KOM payments on the order),
which the worker reports the outcome on.
"""

from __future__ import annotations

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
        # An amount-only refund's id already carries issuedAt; a grant's does not.
        psp_reference = f"kom-refund:{request_id}"
        if payload.granted_refund is not None:
            psp_reference += f"@{refund.created_at.isoformat()}"
    else:
        amount = check_action(payload, event)
        kind = "charge" if isinstance(payload, TransactionChargeRequested) else "cancel"
        assert payload.issued_at is not None  # check_action refuses a request without it
        request_id = f"{transaction.id}:{payload.issued_at.isoformat()}:{amount}"
        psp_reference = f"kom-{kind}:{request_id}"
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
