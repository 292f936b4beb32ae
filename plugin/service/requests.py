"""Platform requests (refund, cancel, charge) as KOM records them: plain JSON, round-trippable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.domain.snapshot import RefundLine, RefundRequest


def refund_to_json(request: RefundRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "created_at": request.created_at.isoformat(),
        "lines": [
            {"line_id": line.line_id, "quantity": line.quantity, "shipment_id": line.shipment_id}
            for line in request.lines
        ],
        "include_shipping": request.include_shipping,
        "amount": request.amount,
        "reason": request.reason,
        "requested_amount": request.requested_amount,
    }


def refund_from_json(body: dict[str, Any]) -> RefundRequest:
    return RefundRequest(
        id=str(body["id"]),
        created_at=datetime.fromisoformat(body["created_at"]),
        lines=tuple(
            RefundLine(str(line["line_id"]), int(line["quantity"]), line.get("shipment_id"))
            for line in body.get("lines", [])
        ),
        include_shipping=bool(body.get("include_shipping", False)),
        amount=None if body.get("amount") is None else int(body["amount"]),
        reason=body.get("reason"),
        requested_amount=None if body.get("requested_amount") is None else int(body["requested_amount"]),
    )
