"""Transaction requests, well-formed and malformed, posted through the real Starlette app.

Every body is validly signed (a real detached JWS over the exact bytes) and starts from what
a real Saleor 3.23.28 sent (captures 0011 charge, 0015 refund of a grant, 0018 cancel).
Saleor reads the JSON of any answer below 500 as the outcome, and retries one >= 500 with an
empty body nobody can act on. So: never a 5xx; a request KOM cannot act on gets a 4xx whose
body Saleor parses as the action's ``*_FAILURE`` with the reason (checked with the fake
Saleor's parser, which follows Saleor's response schemas); a good one is pending with a
pspReference that is new for every request and the same for a re-delivery.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.service.records import ChannelSettings
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from plugin.web.app import create_app
from tests.fakes.saleor.amounts import FAILURE
from tests.fakes.saleor.responses import SyncResponse, parse_sync_response
from tests.saleor import shared
from tests.saleor.signing import jwks_for, rsa_key, sign_detached

SECRET = "transaction-requests-secret-0123456789"
APP_ID = "QXBwOjE="  # the captures' recipient and transaction creator
CAPTURES = {
    "charge": "0011_transaction_charge_requested",
    "refund": "0015_transaction_refund_requested",
    "cancel": "0018_transaction_cancelation_requested",
}
ACTION = {"charge": "CHARGE", "refund": "REFUND", "cancel": "CANCEL"}
Document = dict[str, Any]


@dataclass
class Kom:
    client: httpx.AsyncClient
    store: Store
    api_url: str


@pytest.fixture
async def kom(tmp_path: Path) -> AsyncIterator[Kom]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'kom.db'}", secret_key=SECRET)  # type: ignore[arg-type]
    store = await Store.open(settings.database_url, SecretBox(SECRET))
    api_url = shared.capture(CAPTURES["refund"]).meta["headers"]["Saleor-Api-Url"]
    installation = await store.save_installation(
        platform="saleor", api_url=api_url, app_id=APP_ID, token="t0ken", jwks=jwks_for(rsa_key())
    )
    # Manual capture mode, so that charge requests are recorded too (not only explained).
    manual = ChannelSettings("", "klarna", "playground", "eu", "k", "u", None, capture_mode="manual")
    await store.save_settings(installation.id, manual)
    app = create_app(settings, store=store, run_worker=False)
    async with app.router.lifespan_context(app):
        # raise_app_exceptions=False: a crash must show as the 500 Saleor would get, not pass silently.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kom") as client:
            yield Kom(client, store, api_url)
    await store.close()


def template(kind: str) -> Document:
    document: Document = json.loads(shared.capture(CAPTURES[kind]).body)
    return document


def raw(number: str) -> str:
    """A JSON number written exactly as given (``json.dumps`` would go through float)."""
    return f"@raw:{number}@"


def encode(document: Document) -> bytes:
    text = json.dumps(document)
    while '"@raw:' in text:
        start = text.index('"@raw:')
        end = text.index('@"', start + 6)
        text = text[:start] + text[start + 6 : end] + text[end + 2 :]
    return text.encode()


async def post(kom: Kom, kind: str, document: Document | bytes) -> httpx.Response:
    body = document if isinstance(document, bytes) else encode(document)
    meta = shared.capture(CAPTURES[kind]).meta
    headers = {
        "Content-Type": "application/json",
        "Saleor-Event": meta["event"],
        "Saleor-Api-Url": kom.api_url,
        "Saleor-Signature": sign_detached(body, rsa_key()),
    }
    return await kom.client.post(meta["path"], content=body, headers=headers)


def saleor_reads(kind: str, response: httpx.Response) -> SyncResponse:
    """What Saleor makes of the answer (it parses any status below 500)."""
    assert response.status_code < 500, response.text
    return parse_sync_response(ACTION[kind], "EUR", response.content)


def assert_refused(kind: str, response: httpx.Response, words: str = "") -> str:
    parsed = saleor_reads(kind, response)
    assert 400 <= response.status_code < 500, response.text
    assert parsed.result == FAILURE[ACTION[kind]], response.text  # exactly the action's failure
    assert len(parsed.message) > 20 and words.lower() in parsed.message.lower(), parsed.message
    assert response.json()["error"]  # the reason also in KOM's usual refusal shape
    return parsed.message


def assert_pending(kind: str, response: httpx.Response) -> str:
    parsed = saleor_reads(kind, response)
    assert response.status_code == 200 and parsed.result is None and parsed.psp_reference, response.text
    return parsed.psp_reference


# -- mutations ------------------------------------------------------------------------------

Mutation = Callable[[Document], None]


def put(path: str, value: object) -> Mutation:
    """Set ``value`` at a dotted path ("grantedRefund.lines.0.quantity")."""

    def apply(document: Document) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def drop(key: str) -> Mutation:
    return lambda document: document.pop(key)


def in_currency(code: str, amount: object) -> Mutation:
    """The whole payment in ``code`` (transaction, action and grant), asking for ``amount``."""

    def apply(document: Document) -> None:
        transaction = document["transaction"]
        for name in ("authorizedAmount", "chargedAmount"):
            transaction[name]["currency"] = code
        transaction["order"]["channel"]["currencyCode"] = code
        document["action"].update(currency=code, amount=amount)
        if document.get("grantedRefund"):
            document["grantedRefund"]["amount"]["currency"] = code

    return apply


def every_grant_line(quantity: object) -> Mutation:
    def apply(document: Document) -> None:
        for line in document["grantedRefund"]["lines"]:
            line["quantity"] = quantity

    return apply


# The malformed requests of issue 10 (item 5), each of which used to answer 500 or to be
# accepted: (request, mutation, words the reason must contain).
NAMED: list[tuple[str, str, Mutation, str]] = [
    ("refund", "negative amount", put("action.amount", -100.0), "negative"),
    ("charge", "negative amount", put("action.amount", -0.01), "negative"),
    ("refund", "overflowing amount", put("action.amount", 1e30), "beyond any amount"),
    ("cancel", "beyond float precision", put("action.amount", raw("90071992547409.93")), "beyond any amount"),
    ("refund", "sub-unit EUR amount", put("action.amount", 0.001), "more decimal places"),
    ("refund", "sub-unit JPY amount", in_currency("JPY", 1.5), "more decimal places"),
    ("charge", "finer than a cent", put("action.amount", raw("19.999999999999999")), "decimal places"),
    ("refund", "currency mismatched with the order", put("action.currency", "USD"), "the order is in EUR"),
    ("refund", "grant in another currency", put("grantedRefund.amount.currency", "SEK"), "in SEK"),
    ("cancel", "invalid currency", put("action.currency", "EURO"), "ISO 4217"),
    ("charge", "empty currency", put("action.currency", ""), "ISO 4217"),
    ("refund", "wrong actionType", put("action.actionType", "CHARGE"), "must ask for REFUND"),
    ("cancel", "wrong actionType (case)", put("action.actionType", "cancel"), "must ask for CANCEL"),
    ("charge", "missing issuedAt", drop("issuedAt"), "issuedAt"),
    ("refund", "missing issuedAt", drop("issuedAt"), "issuedAt"),
    ("refund", "negative quantity", put("grantedRefund.lines.0.quantity", -1), "negative quantity"),
    ("refund", "only zero quantities", every_grant_line(0), "quantity 0"),
    ("refund", "NaN amount", put("action.amount", raw("NaN")), "not a JSON number"),
    ("refund", "amount as text", put("action.amount", "100.00"), "JSON number"),
    ("cancel", "no order", put("transaction.order", None), "names no transaction"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "case", "mutate", "words"), NAMED, ids=[f"{k}: {c}" for k, c, _, _ in NAMED]
)
async def test_named_malformed_requests_are_refused_with_the_reason(
    kom: Kom, kind: str, case: str, mutate: Mutation, words: str
) -> None:
    document = template(kind)
    mutate(document)
    assert_refused(kind, await post(kom, kind, document), words)
    order_id = template(kind)["transaction"]["order"]["id"]
    assert await kom.store.requests_for(1, order_id) == []  # nothing recorded to act on


@pytest.mark.parametrize("kind", sorted(CAPTURES))
async def test_the_captured_requests_are_pending_and_named_by_their_issued_at(kom: Kom, kind: str) -> None:
    psp = assert_pending(kind, await post(kom, kind, template(kind)))
    assert psp.startswith("kom-") and len(psp) <= 40  # short: issuedAt goes in as a hash
    assert assert_pending(kind, await post(kom, kind, template(kind))) == psp  # a re-delivery: the same
    later = template(kind)
    later["issuedAt"] = "2026-11-21T21:30:00.000001+00:00"
    if kind == "refund":  # a refund is named by its grant; another grant of the same order
        later["grantedRefund"]["id"] = "T3JkZXJHcmFudGVkUmVmdW5kOjk5"
    assert assert_pending(kind, await post(kom, kind, later)) != psp  # a new request: a new name


# -- identity: what is new to Saleor, and where it goes -------------------------------------


async def test_a_grant_requested_again_is_a_new_request_for_the_same_grant(kom: Kom) -> None:
    first = template("refund")
    psp = assert_pending("refund", await post(kom, "refund", first))
    order_id = first["transaction"]["order"]["id"]
    (recorded,) = await kom.store.requests_for(1, order_id)
    await kom.store.mark_done([recorded.id])  # KOM refused it and said so (REFUND_FAILURE)
    again = template("refund")  # the merchant asks again: Saleor sends a new payload
    again["issuedAt"] = "2026-11-21T21:30:00.000001+00:00"
    again_psp = assert_pending("refund", await post(kom, "refund", again))
    assert again_psp != psp
    older, newer = await kom.store.requests_for(1, order_id)
    assert (older.psp_reference, older.done) == (psp, True)
    assert (newer.psp_reference, newer.done) == (again_psp, False)
    # The same grant: its provider refund references, so nothing sent for it goes twice.
    assert newer.request_id == older.request_id == first["grantedRefund"]["id"]
    assert newer.body["created_at"] == again["issuedAt"]


async def test_an_order_with_two_kom_payments_keeps_each_request_on_its_transaction(kom: Kom) -> None:
    first, second = template("cancel"), template("cancel")
    second["transaction"]["id"] = "VHJhbnNhY3Rpb25JdGVtOnNlY29uZC1wYXltZW50"
    second["issuedAt"] = "2026-11-21T21:08:02.000000+00:00"
    refund = template("refund")
    refund["transaction"]["id"] = second["transaction"]["id"]
    refund["transaction"]["order"] = first["transaction"]["order"]
    psps = [
        assert_pending(kind, await post(kom, kind, doc))
        for kind, doc in [("cancel", first), ("cancel", second), ("refund", refund)]
    ]
    assert len(set(psps)) == 3
    found = await kom.store.requests_for(1, first["transaction"]["order"]["id"])
    one, two = first["transaction"]["id"], second["transaction"]["id"]
    assert sorted((r.kind, r.transaction_id) for r in found) == sorted(
        [("cancel", one), ("cancel", two), ("refund", two)]
    )


async def test_ids_reused_across_orders_are_refused_not_merged(kom: Kom) -> None:
    original = template("refund")
    assert_pending("refund", await post(kom, "refund", original))
    order_id = original["transaction"]["order"]["id"]
    other_order = {**original["transaction"]["order"], "id": "T3JkZXI6b3RoZXItb3JkZXI=", "number": "2"}

    same = template("refund")
    same["transaction"]["order"] = other_order  # the very same request, now for another order
    assert_refused("refund", await post(kom, "refund", same), f"on record for order {order_id}")
    assert (await post(kom, "refund", same)).status_code == 409

    grant = template("refund")  # the same grant again, for another order
    grant["issuedAt"] = "2026-11-21T21:30:00+00:00"
    grant["transaction"]["id"] = "VHJhbnNhY3Rpb25JdGVtOm90aGVy"
    grant["transaction"]["order"] = other_order
    assert_refused("refund", await post(kom, "refund", grant), "its refund")

    transaction = template("cancel")  # a new request on the first order's transaction
    transaction["transaction"]["order"] = other_order
    assert_refused("cancel", await post(kom, "cancel", transaction), "its transaction")

    assert await kom.store.requests_for(1, other_order["id"]) == []
    assert len(await kom.store.requests_for(1, order_id)) == 1


async def test_an_unverifiable_signature_is_a_failure_saleor_records_not_a_5xx(kom: Kom) -> None:
    body = shared.capture(CAPTURES["refund"]).body
    meta = shared.capture(CAPTURES["refund"]).meta
    headers = {
        "Saleor-Event": meta["event"],
        "Saleor-Api-Url": kom.api_url,
        # A key KOM does not know, and it fetched Saleor's keys moments ago (at install):
        # for an async webhook that is a 503 (Saleor's retry comes with the body); here it
        # would come empty, so the merchant is told instead.
        "Saleor-Signature": sign_detached(body, rsa_key(1), "rotated-key"),
    }
    response = await kom.client.post(meta["path"], content=body, headers=headers)
    assert_refused("refund", response, "signing key")
    assert response.status_code == 401


# -- the fuzz -------------------------------------------------------------------------------

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.just([]),
    st.just({}),
    st.sampled_from([raw("NaN"), raw("Infinity"), raw("-1e999"), raw("1e999999"), "\u0000", "x" * 300]),
)
_bad_amounts = st.one_of(
    st.decimals(max_value=Decimal("-0.01"), places=2, allow_nan=False).map(lambda d: raw(str(d))),  # negative
    st.integers(min_value=21474837, max_value=10**40).map(str).map(raw),  # beyond 2**31 - 1 cents
    st.sampled_from(["1e30", "90071992547409.93", "1E+999999"]).map(raw),
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)
    .filter(lambda d: d % Decimal("0.01") != 0)
    .map(lambda d: raw(str(d))),  # finer than a cent
    st.sampled_from(["NaN", "Infinity", "-Infinity", "12.50", "", "1,5"]),  # text, not numbers
    st.sampled_from([None, True, False, [], {}]),
)
_bad_currencies = st.one_of(
    st.sampled_from(["EURO", "", "EU", "eur", "usd", "USD", "SEK", "JPY", "€", "E U"]),
    st.text(max_size=5).filter(lambda c: c != "EUR"),
    st.sampled_from([None, 5, [], {}]),
)
_bad_quantities = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**31),
    st.just(0),
    st.sampled_from([1.5, "2", True, None, [], {}]),
)
_REQUIRED = [  # present in every template: a null or a wrong type here cannot be acted on
    "action",
    "action.currency",
    "action.actionType",
    "transaction",
    "transaction.id",
    "transaction.order",
    "transaction.order.id",
]
_REQUIRED_GRANT = [
    "grantedRefund.id",
    "grantedRefund.amount",
    "grantedRefund.lines.0",
    "grantedRefund.lines.0.id",
    "grantedRefund.lines.0.orderLine",
    "grantedRefund.lines.0.orderLine.id",
]


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, Document]:
    """A captured request with at least one defect that must stop KOM from acting on it."""
    kind = draw(st.sampled_from(sorted(CAPTURES)))
    document = template(kind)
    required = _REQUIRED + (_REQUIRED_GRANT if kind == "refund" else [])
    wrong_action = st.sampled_from(["CHARGE", "REFUND", "CANCEL", "charge", "", "VOID"]).filter(
        lambda a: a != ACTION[kind]
    )
    bad_times = st.sampled_from([None, "", "yesterday", "2026-11-21T21:07:55", 1763758075])
    defects = [
        st.builds(put, st.just("action.amount"), _bad_amounts),
        st.builds(put, st.just("action.currency"), _bad_currencies),
        st.builds(put, st.just("action.actionType"), wrong_action | st.sampled_from([None, 1, []])),
        st.just(drop("issuedAt")),
        st.builds(put, st.just("issuedAt"), bad_times),
        st.builds(put, st.sampled_from(required), st.sampled_from([None, 5, True, "x" * 200, [], "\u0000"])),
    ]
    if kind == "refund":
        grant_currencies = _bad_currencies.filter(lambda c: c is not None)  # None: "not given", fine
        defects += [
            st.builds(every_grant_line, _bad_quantities),
            st.builds(put, st.just("grantedRefund.amount.amount"), _bad_amounts),
            st.builds(put, st.just("grantedRefund.amount.currency"), grant_currencies),
        ]
    for mutate in draw(st.lists(st.one_of(defects), min_size=1, max_size=3)):
        # A later defect may find its parent gone (replaced by an earlier one): still malformed.
        with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
            mutate(document)
    return kind, document


def _paths(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        items: list[tuple[str, object]] = list(node.items())
    elif isinstance(node, list):
        items = [(str(i), v) for i, v in enumerate(node)]
    else:
        return []
    found = []
    for key, value in items:
        path = f"{prefix}{key}"
        found += [path, *_paths(value, f"{path}.")]
    return found


@functools.cache
def _all_paths(kind: str) -> list[str]:
    return _paths(template(kind))


@st.composite
def anything_anywhere(draw: st.DrawFn) -> tuple[str, Document]:
    """Nulls and wrong values in any field of a captured request (may stay acceptable)."""
    kind = draw(st.sampled_from(sorted(CAPTURES)))
    document = template(kind)
    for path in draw(st.lists(st.sampled_from(_all_paths(kind)), min_size=1, max_size=4)):
        value = draw(_junk)
        with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):  # parent gone
            put(path, value)(document)
    return kind, document


# The profile decides how many examples (tests/conftest.py: 300 by default, 5000 with "deep").
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(malformed())
async def test_fuzz_malformed_requests_are_refused_never_500(kom: Kom, case: tuple[str, Document]) -> None:
    kind, document = case
    assert_refused(kind, await post(kom, kind, document))


@FUZZ
@given(anything_anywhere())
async def test_fuzz_any_field_any_value_never_500(kom: Kom, case: tuple[str, Document]) -> None:
    kind, document = case
    response = await post(kom, kind, document)
    parsed = saleor_reads(kind, response)  # below 500, and JSON Saleor accepts
    if parsed.result is None:
        assert response.status_code == 200 and parsed.psp_reference
    else:
        assert parsed.result == FAILURE[ACTION[kind]] and parsed.message, response.text
