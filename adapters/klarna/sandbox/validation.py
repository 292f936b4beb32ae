"""Strict validation of Order Management request bodies, with the limits of Klarna's OpenAPI spec.

Own code on purpose (no KOM models): the sandbox must catch bugs in KOM's client.

Errors are 400 BAD_VALUE with one "Bad value: <field path>" message per offending field
(the Klarna Payments wording; Order Management does not document its own). Unknown fields,
wrong JSON types (booleans and floats are not integers) and non-JSON bodies are all
BAD_VALUE. JSON null on an optional field counts as absent. Length and enum violations
inside shipping_info answer 422 UNPROCESSABLE_ENTITY instead, which Klarna documents for
"shipping_company longer than 100 characters".

Sandbox strictness choices (Klarna does not document what Order Management checks):
  * line arithmetic is exact: total_amount == quantity*unit_price - total_discount_amount;
  * total_tax_amount within ±1 of total_amount*tax_rate/(10000+tax_rate) (tax_rate
    defaults to 0 when a line has a tax amount but no rate), in integer math;
  * a capture's (or sandbox order's) non-empty order_lines must sum to its amount.
    Refund lines need not: a refund whose lines don't add up is accepted and misallocated.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from .errors import ApiError, bad_value

MAX_AMOUNT = 200_000_000
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
LINE_TYPES = frozenset({"physical", "discount", "shipping_fee", "sales_tax", "store_credit", "gift_card",
                        "digital", "surcharge", "return_fee"})  # fmt: skip
SHIPPING_METHODS = frozenset({"PickUpStore", "Home", "BoxReg", "BoxUnreg", "PickUpPoint", "Own", "Postal",
                              "DHLPackstation", "Digital", "Undefined", "PickUpWarehouse", "ClickCollect",
                              "PalletDelivery"})  # fmt: skip
SUBSCRIPTION_INTERVALS = frozenset({"DAY", "WEEK", "MONTH", "YEAR"})
_LINE_STRINGS = {"name": 255, "reference": 255, "quantity_unit": 10, "merchant_data": 1024,
                 "product_url": 1024, "image_url": 1024}  # fmt: skip
_LINE_FIELDS = {*_LINE_STRINGS, "type", "quantity", "unit_price", "total_amount", "total_discount_amount",
                "tax_rate", "total_tax_amount", "product_identifiers", "subscription"}  # fmt: skip
_IDENTIFIERS = {"brand": 70, "category_path": 750, "global_trade_item_number": 50,
                "manufacturer_part_number": 70, "color": 64, "size": 64}  # fmt: skip
_SHIPPING_STRINGS = {"shipping_company": 100, "tracking_number": 100, "tracking_uri": 1024,
                     "return_shipping_company": 100, "return_tracking_number": 100,
                     "return_tracking_uri": 1024}  # fmt: skip

JSONObject = dict[str, object]


@dataclass(frozen=True)
class OrderLine:
    raw: JSONObject  # the line as sent, nulls dropped; echoed back on reads
    reference: str | None
    total_amount: int


@dataclass(frozen=True)
class CaptureRequest:
    captured_amount: int
    description: str | None
    reference: str | None
    order_lines: tuple[OrderLine, ...]
    shipping_info: tuple[JSONObject, ...]


@dataclass(frozen=True)
class RefundRequest:
    refunded_amount: int
    description: str | None
    reference: str | None
    order_lines: tuple[OrderLine, ...]
    credit_invoice: bool | None


@dataclass(frozen=True)
class NewOrder:
    """Body of the sandbox-only POST /_sandbox/orders."""

    purchase_currency: str
    order_amount: int
    order_lines: tuple[OrderLine, ...]
    order_id: str | None
    purchase_country: str
    locale: str
    merchant_reference1: str | None
    merchant_reference2: str | None


def parse_json(raw: bytes, content_type: str | None) -> JSONObject:
    """The request body as a JSON object, or 400 BAD_VALUE."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise bad_value("Content-Type")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:  # also UnicodeDecodeError and over-long integers
        raise bad_value("body") from None
    if not isinstance(body, dict):
        raise bad_value("body")
    return body


def capture_request(body: JSONObject) -> CaptureRequest:
    c = _Checker()
    allowed = {
        "captured_amount",
        "description",
        "reference",
        "order_lines",
        "shipping_info",
        "shipping_delay",
    }
    obj = c.obj(body, "", allowed) or {}
    amount = c.integer(obj, "captured_amount", "", 0, MAX_AMOUNT, required=True)
    description = c.string(obj, "description", "", 255)
    reference = c.string(obj, "reference", "", 255)
    lines = c.order_lines(obj)
    shipping = c.shipping_list(obj, "shipping_info", max_items=500, min_items=0)
    c.integer(obj, "shipping_delay", "", 0, INT64_MAX)
    if amount is not None and lines and not c.bad and sum(x.total_amount for x in lines) != amount:
        c.fail("captured_amount")
    c.raise_if_failed()
    assert amount is not None
    return CaptureRequest(amount, description, reference, lines, shipping)


def refund_request(body: JSONObject) -> RefundRequest:
    c = _Checker()
    allowed = {"refunded_amount", "description", "reference", "order_lines", "credit_invoice"}
    obj = c.obj(body, "", allowed) or {}
    amount = c.integer(obj, "refunded_amount", "", 0, MAX_AMOUNT, required=True)
    description = c.string(obj, "description", "", 255)
    reference = c.string(obj, "reference", "", 255)
    lines = c.order_lines(obj)
    credit_invoice = c.boolean(obj, "credit_invoice", "")
    c.raise_if_failed()
    assert amount is not None
    return RefundRequest(amount, description, reference, lines, credit_invoice)


def shipping_info_update(body: JSONObject) -> tuple[JSONObject, ...]:
    c = _Checker()
    obj = c.obj(body, "", {"shipping_info"}) or {}
    if obj.get("shipping_info") is None:
        c.fail("shipping_info")
    items = c.shipping_list(obj, "shipping_info", max_items=500, min_items=1)
    c.raise_if_failed()
    return items


def new_order(body: JSONObject) -> NewOrder:
    c = _Checker()
    allowed = {"purchase_currency", "order_amount", "order_lines", "order_id", "purchase_country",
               "locale", "merchant_reference1", "merchant_reference2"}  # fmt: skip
    obj = c.obj(body, "", allowed) or {}
    currency = c.string(obj, "purchase_currency", "", 3, required=True)
    if currency is not None and not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        c.fail("purchase_currency")
    amount = c.integer(obj, "order_amount", "", 1, MAX_AMOUNT, required=True)
    lines = c.order_lines(obj)
    order_id = c.string(obj, "order_id", "", 255)
    if order_id is not None and (not order_id or "/" in order_id):
        c.fail("order_id")
    country = c.string(obj, "purchase_country", "", 2) or "SE"
    locale = c.string(obj, "locale", "", 20) or "sv-SE"
    ref1 = c.string(obj, "merchant_reference1", "", 255)
    ref2 = c.string(obj, "merchant_reference2", "", 255)
    if amount is not None and lines and not c.bad and sum(x.total_amount for x in lines) != amount:
        c.fail("order_amount")
    c.raise_if_failed()
    assert currency is not None and amount is not None
    return NewOrder(currency.upper(), amount, lines, order_id, country, locale, ref1, ref2)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Checker:
    """Collects offending field paths; raises them all at once."""

    def __init__(self) -> None:
        self.bad: list[str] = []  # 400 BAD_VALUE
        self.unprocessable: list[str] = []  # 422, for shipping_info limits

    def fail(self, path: str, *, status: int = 400) -> None:
        target = self.bad if status == 400 else self.unprocessable
        if path not in target:
            target.append(path)

    def raise_if_failed(self) -> None:
        if self.bad:
            raise bad_value(*self.bad)
        if self.unprocessable:
            messages = (f"Bad value: {p}" for p in self.unprocessable)
            raise ApiError(422, "UNPROCESSABLE_ENTITY", *messages)

    def obj(self, value: object, path: str, allowed: Collection[str]) -> JSONObject | None:
        if not isinstance(value, dict):
            self.fail(path or "body")
            return None
        for key in value:
            if key not in allowed:
                self.fail(_join(path, str(key)))
        return {k: v for k, v in value.items() if v is not None}

    def integer(
        self, obj: Mapping[str, object], key: str, path: str, lo: int, hi: int, *, required: bool = False
    ) -> int | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(_join(path, key))
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.fail(_join(path, key))
            return None
        return value

    def string(
        self,
        obj: Mapping[str, object],
        key: str,
        path: str,
        max_len: int,
        *,
        required: bool = False,
        choices: Collection[str] | None = None,
        limit_status: int = 400,
    ) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(_join(path, key))
            return None
        if not isinstance(value, str):
            self.fail(_join(path, key))
            return None
        if len(value) > max_len or (choices is not None and value not in choices):
            self.fail(_join(path, key), status=limit_status)
            return None
        return value

    def boolean(self, obj: Mapping[str, object], key: str, path: str) -> bool | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(_join(path, key))
            return None
        return value

    def items(self, obj: Mapping[str, object], key: str, max_items: int, min_items: int) -> list[object]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not min_items <= len(value) <= max_items:
            self.fail(key)
            return []
        return value

    def order_lines(self, obj: Mapping[str, object]) -> tuple[OrderLine, ...]:
        values = self.items(obj, "order_lines", 1000, 0)
        lines = (self.order_line(v, f"order_lines[{i}]") for i, v in enumerate(values))
        return tuple(line for line in lines if line is not None)

    def order_line(self, value: object, path: str) -> OrderLine | None:
        line = self.obj(value, path, _LINE_FIELDS)
        if line is None:
            return None
        before = len(self.bad)
        self.string(line, "name", path, 255, required=True)
        for key, max_len in _LINE_STRINGS.items():
            self.string(line, key, path, max_len)
        self.string(line, "type", path, 50, choices=LINE_TYPES)
        qty = self.integer(line, "quantity", path, 0, INT64_MAX, required=True)
        price = self.integer(line, "unit_price", path, -MAX_AMOUNT, MAX_AMOUNT, required=True)
        total = self.integer(line, "total_amount", path, -MAX_AMOUNT, MAX_AMOUNT, required=True)
        discount = self.integer(line, "total_discount_amount", path, 0, MAX_AMOUNT)
        rate = self.integer(line, "tax_rate", path, 0, 10_000)
        tax = self.integer(line, "total_tax_amount", path, -MAX_AMOUNT, MAX_AMOUNT)
        self.identifiers(line, path)
        self.subscription(line, path)
        if len(self.bad) > before:
            return None  # arithmetic on bad inputs would only add noise
        assert qty is not None and price is not None and total is not None
        if total != qty * price - (discount or 0):
            self.fail(_join(path, "total_amount"))
        # |tax - total*rate/(10000+rate)| <= 1, multiplied out to stay in integers
        rate = rate or 0
        if tax is not None and abs(tax * (10_000 + rate) - total * rate) > 10_000 + rate:
            self.fail(_join(path, "total_tax_amount"))
        if len(self.bad) > before:
            return None
        reference = line.get("reference")
        return OrderLine(line, reference if isinstance(reference, str) else None, total)

    def identifiers(self, line: Mapping[str, object], path: str) -> None:
        if line.get("product_identifiers") is None:
            return
        sub_path = _join(path, "product_identifiers")
        ids = self.obj(line["product_identifiers"], sub_path, _IDENTIFIERS)
        for key, max_len in _IDENTIFIERS.items():
            if ids is not None:
                self.string(ids, key, sub_path, max_len)

    def subscription(self, line: Mapping[str, object], path: str) -> None:
        if line.get("subscription") is None:
            return
        sub_path = _join(path, "subscription")
        sub = self.obj(line["subscription"], sub_path, {"name", "interval", "interval_count"})
        if sub is not None:
            self.string(sub, "name", sub_path, 255, required=True)
            self.string(sub, "interval", sub_path, 5, required=True, choices=SUBSCRIPTION_INTERVALS)
            self.integer(sub, "interval_count", sub_path, 1, INT32_MAX, required=True)

    def shipping_list(
        self, obj: Mapping[str, object], key: str, *, max_items: int, min_items: int
    ) -> tuple[JSONObject, ...]:
        result = []
        for i, value in enumerate(self.items(obj, key, max_items, min_items)):
            path = f"{key}[{i}]"
            info = self.obj(value, path, {*_SHIPPING_STRINGS, "shipping_method"})
            if info is None:
                continue
            for field, max_len in _SHIPPING_STRINGS.items():
                self.string(info, field, path, max_len, limit_status=422)
            self.string(info, "shipping_method", path, 50, choices=SHIPPING_METHODS, limit_status=422)
            result.append(info)
        return tuple(result)


async def read_json(request: Request, *, strict: bool = True) -> JSONObject:
    """The body of `request` as a JSON object. strict=False ignores the Content-Type, so that
    admin calls made with `curl -d '{...}'` work in demos."""
    content_type = request.headers.get("content-type") if strict else "application/json"
    return parse_json(await request.body(), content_type)
