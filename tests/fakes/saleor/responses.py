"""Answers to sync TRANSACTION_*_REQUESTED webhooks, parsed like Saleor 3.23.28.

3.23.28 validates the JSON with pydantic (``webhook/response_schemas/transaction.py``):
- no ``result``: the async form, ``{"pspReference": str, "actions"?}``; the request stays
  pending until ``transactionEventReport`` reports the outcome with that pspReference;
- ``result`` must be exactly ``<ACTION>_SUCCESS`` or ``<ACTION>_FAILURE`` (case-sensitive,
  matching the requested action); SUCCESS needs ``pspReference``;
- optional ``amount`` (default: the requested amount), ``time`` (ISO 8601),
  ``externalUrl`` (an http(s) URL), ``message`` (cut to 512), ``actions`` (invalid
  entries skipped).
Anything else, or a body that is not JSON, is a ``ValueError`` whose text becomes the
message of the FAILURE event Saleor records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .amounts import ACTIONS, FAILURE, SUCCESS
from .money import to_minor

__all__ = ["FAILED_DELIVERY", "SyncResponse", "parse_sync_response", "truncate"]

FAILED_DELIVERY = "Failed to delivery request."  # sic, Saleor's wording
_MESSAGE_LIMIT = 512


def truncate(message: str) -> str:
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 3] + "..."


@dataclass
class SyncResponse:
    psp_reference: str | None
    result: str | None  # None: the async form ({"pspReference"} only)
    amount: int | None = None
    time: datetime | None = None
    external_url: str = ""
    message: str = ""
    actions: list[str] | None = field(default=None)


def parse_sync_response(action: str, currency: str, body: bytes) -> SyncResponse:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(FAILED_DELIVERY) from None
    if not isinstance(data, dict):
        raise ValueError("Response is not a JSON object.")
    actions = data.get("actions")
    if actions is not None:
        if not isinstance(actions, list):
            raise ValueError("Incorrect value for field: actions.")
        actions = sorted({a for a in actions if a in ACTIONS})  # invalid entries are skipped
    psp = data.get("pspReference")
    if psp is not None and not isinstance(psp, str):
        raise ValueError("Incorrect value for field: pspReference.")
    result = data.get("result")
    if result is None:  # async: the outcome comes later via transactionEventReport
        if psp is None:
            raise ValueError("Missing value for field: pspReference.")
        return SyncResponse(psp_reference=psp, result=None, actions=actions)
    if result not in (SUCCESS[action], FAILURE[action]):  # case-sensitive Literal
        raise ValueError(
            f"Missing or invalid value for `result`: {result}. Possible values: "
            f"{SUCCESS[action]}, {FAILURE[action]}."
        )
    if result == SUCCESS[action] and psp is None:
        raise ValueError(f"Providing `pspReference` is required for {result}.")
    parsed = SyncResponse(psp_reference=psp, result=result, actions=actions)
    if data.get("amount") is not None:
        try:
            parsed.amount = to_minor(data["amount"], currency)
        except ValueError:
            raise ValueError(f"Incorrect value for field: amount, value: {data['amount']}.") from None
    if data.get("time") is not None:
        try:
            parsed.time = datetime.fromisoformat(str(data["time"]))
            if parsed.time.tzinfo is None:  # DatetimeUTC: naive means UTC
                parsed.time = parsed.time.replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"Invalid value for field 'time': {data['time']}.") from None
    url = data.get("externalUrl")
    if url is not None:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Incorrect value for field: externalUrl, value: {url}.")
        parsed.external_url = str(url)
    parsed.message = truncate(str(data.get("message") or ""))
    return parsed
