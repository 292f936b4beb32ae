"""Sync answers to TRANSACTION_*_REQUESTED, checked against a mirror of Saleor's parser.

The mirror follows ``saleor/webhook/response_schemas/transaction.py`` (3.23): pspReference
required on success, Decimal amount, HttpUrl externalUrl, actions limited to
CHARGE/REFUND/CANCEL, result literal per event. ``extra="forbid"`` here so KOM never sends
a key Saleor would ignore.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from adapters.saleor.responses import MAX_MESSAGE, RESULTS, ResultKind, pending, result


class _Saleor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    psp_reference: str | None = Field(default=None, alias="pspReference")
    amount: Decimal | None = None
    external_url: HttpUrl | None = Field(default=None, alias="externalUrl")
    message: str = Field(default="", max_length=MAX_MESSAGE)
    actions: list[Literal["CHARGE", "REFUND", "CANCEL"]] | None = None
    result: str


class _Success(_Saleor):
    psp_reference: str = Field(alias="pspReference")


class _Pending(BaseModel):
    model_config = ConfigDict(extra="forbid")
    psp_reference: str = Field(alias="pspReference")
    actions: list[Literal["CHARGE", "REFUND", "CANCEL"]] | None = None


def saleor_parses(body: dict[str, object]) -> _Saleor:
    wire = json.loads(json.dumps(body))  # what actually travels
    kind = ResultKind(wire["result"])
    return (_Success if kind.success else _Saleor).model_validate(wire)


@pytest.mark.parametrize("kind", list(ResultKind))
def test_every_result_kind(kind: ResultKind) -> None:
    body = result(kind, psp_reference="r-1", amount=Decimal("59.99"), message="ok")
    parsed = saleor_parses(body)
    assert parsed.result == kind.value and parsed.amount == Decimal("59.99") and parsed.psp_reference == "r-1"
    assert json.dumps(body) == json.dumps(
        {"result": kind.value, "pspReference": "r-1", "amount": 59.99, "message": "ok"}
    )


def test_results_per_event() -> None:
    assert RESULTS["TRANSACTION_REFUND_REQUESTED"] == (ResultKind.REFUND_SUCCESS, ResultKind.REFUND_FAILURE)
    assert {kind for pair in RESULTS.values() for kind in pair} == set(ResultKind)


def test_failure_without_psp_reference_and_amount() -> None:
    body = result("REFUND_FAILURE", amount=None, message="Klarna 403 REFUND_NOT_ALLOWED")
    assert body == {"result": "REFUND_FAILURE", "message": "Klarna 403 REFUND_NOT_ALLOWED"}
    saleor_parses(body)


def test_success_needs_psp_reference() -> None:
    with pytest.raises(ValueError, match="pspReference"):
        result(ResultKind.CHARGE_SUCCESS, amount=None, message="")


def test_message_is_cut_at_512() -> None:
    body = result(ResultKind.CANCEL_SUCCESS, psp_reference="x", amount=None, message="é" * 600)
    assert len(body["message"]) == MAX_MESSAGE
    saleor_parses(body)


def test_external_url_and_actions() -> None:
    body = result(
        ResultKind.CHARGE_SUCCESS,
        psp_reference="cap-1",
        amount=Decimal("100"),
        message="",
        external_url="https://portal.klarna.com/orders/abc",
        actions=["REFUND", "CANCEL", "REFUND"],
    )
    parsed = saleor_parses(body)
    assert str(parsed.external_url) == "https://portal.klarna.com/orders/abc"
    assert parsed.actions == ["REFUND", "CANCEL"]
    with pytest.raises(ValueError, match="externalUrl"):
        result(ResultKind.CHARGE_FAILURE, amount=None, message="", external_url="/relative")
    with pytest.raises(ValueError, match="actions"):
        result(ResultKind.CHARGE_FAILURE, amount=None, message="", actions=["AUTHORIZE"])


@pytest.mark.parametrize(
    "amount", [Decimal("0"), Decimal("0.01"), Decimal("1234567.89"), Decimal("5"), Decimal("99999999999.99")]
)
def test_amounts_travel_exactly(amount: Decimal) -> None:
    body = result(ResultKind.REFUND_SUCCESS, psp_reference="r", amount=amount, message="")
    wire = json.dumps(body)
    assert Decimal(json.loads(wire, parse_float=Decimal)["amount"]) == amount
    assert saleor_parses(body).amount == amount


@pytest.mark.parametrize(
    "amount", [Decimal("-1"), Decimal("NaN"), Decimal("Infinity"), Decimal("0.1234567890123456789")]
)
def test_bad_amounts(amount: Decimal) -> None:
    with pytest.raises(ValueError, match="amount"):
        result(ResultKind.REFUND_SUCCESS, psp_reference="r", amount=amount, message="")


def test_pending() -> None:
    assert pending("r-v13") == {"pspReference": "r-v13"}
    assert _Pending.model_validate(pending("r", actions=["REFUND"])).actions == ["REFUND"]
    with pytest.raises(ValueError):
        pending("")
