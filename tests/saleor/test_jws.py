"""Saleor-Signature and Dashboard JWT verification: real captures, forgeries, fuzzing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.saleor import jws
from adapters.saleor.jws import ExpiredToken, SignatureError, UnknownKeyId
from tests.saleor import shared
from tests.saleor.signing import (
    KID,
    SALEOR_HEADER,
    b64url,
    encode_header,
    jwk_for,
    jwks_for,
    rs256,
    rsa_key,
    sign_detached,
    sign_hs256_detached,
    sign_jwt,
)

BODY = b'{"__typename": "FulfillmentCreated", "issuedAt": "2026-11-21T21:07:29+00:00"}'
NOW = datetime(2026, 11, 21, 21, 0, tzinfo=UTC)


# --- real Saleor 3.23.28 captures -------------------------------------------------------


@pytest.mark.contract
@pytest.mark.parametrize("name", shared.capture_names())
def test_every_capture_verifies(name: str) -> None:
    capture = shared.capture(name)
    jws.verify(capture.signature, capture.body, shared.jwks())
    assert jws.key_id(capture.signature) == shared.jwks()["keys"][0]["kid"]


@pytest.mark.contract
def test_empty_body_retry_verifies_and_nothing_else_does() -> None:
    # Saleor's retry after a 5xx is sent with an empty body, correctly signed over b"".
    capture = shared.capture("0051_transaction_refund_requested")
    assert capture.body == b""
    jws.verify(capture.signature, b"", shared.jwks())
    for other in (b"{}", b" ", b"\n"):
        with pytest.raises(SignatureError):
            jws.verify(capture.signature, other, shared.jwks())


@pytest.mark.contract
@pytest.mark.parametrize("name", shared.capture_names("fulfillment_created"))
def test_one_flipped_byte_fails(name: str) -> None:
    capture = shared.capture(name)
    for position in (0, len(capture.body) // 2, len(capture.body) - 1):
        tampered = bytearray(capture.body)
        tampered[position] ^= 0x01
        with pytest.raises(SignatureError):
            jws.verify(capture.signature, bytes(tampered), shared.jwks())


@pytest.mark.contract
def test_whitespace_change_fails() -> None:
    # The body is json.dumps with ", " separators: re-serialising it must not verify.
    capture = shared.capture("0015_transaction_refund_requested")
    compact = json.dumps(capture.json(), separators=(",", ":")).encode()
    for body in (capture.body.replace(b", ", b",", 1), capture.body + b"\n", compact):
        with pytest.raises(SignatureError):
            jws.verify(capture.signature, body, shared.jwks())


@pytest.mark.contract
def test_capture_against_a_different_key_with_the_same_kid_fails() -> None:
    capture = shared.capture("0003_fulfillment_created")
    impostor = jwks_for(rsa_key(), jws.key_id(capture.signature))
    with pytest.raises(SignatureError) as info:
        jws.verify(capture.signature, capture.body, impostor)
    assert not isinstance(info.value, UnknownKeyId)


@pytest.mark.contract
def test_capture_with_rotated_jwks_is_unknown_kid() -> None:
    capture = shared.capture("0003_fulfillment_created")
    with pytest.raises(UnknownKeyId) as info:
        jws.verify(capture.signature, capture.body, jwks_for(rsa_key(), "rotated"))
    assert info.value.kid == jws.key_id(capture.signature)


# --- our own key: what Saleor would send, and forgeries ---------------------------------


def test_own_signature_verifies() -> None:
    key = rsa_key()
    jws.verify(sign_detached(BODY, key), BODY, jwks_for(key))
    assert jws.key_id(sign_detached(BODY, key, "abc")) == "abc"


def test_key_is_found_by_kid_among_several() -> None:
    key, other = rsa_key(), rsa_key(1)
    keys = {"keys": [jwk_for(other, "old"), {"kty": "EC", "kid": "ec"}, jwk_for(key, "new")]}
    jws.verify(sign_detached(BODY, key, "new"), BODY, keys)
    with pytest.raises(SignatureError):
        jws.verify(sign_detached(BODY, key, "old"), BODY, keys)


def test_unknown_kid() -> None:
    key = rsa_key()
    with pytest.raises(UnknownKeyId):
        jws.verify(sign_detached(BODY, key, "other"), BODY, jwks_for(key))


def test_alg_none_is_refused() -> None:
    header = encode_header({**SALEOR_HEADER, "alg": "none", "kid": KID})
    for signature in (f"{header}..", f"{header}..AAAA"):
        with pytest.raises(SignatureError):
            jws.verify(signature, BODY, jwks_for(rsa_key()))


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    key = rsa_key()
    jwk = jwk_for(key)
    for secret in (jwk["n"].encode(), json.dumps(jwk).encode()):
        with pytest.raises(SignatureError, match="RS256"):
            jws.verify(sign_hs256_detached(BODY, secret), BODY, {"keys": [jwk]})


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "crit": ["b64"]},  # b64 missing
        {"alg": "RS256", "b64": True, "crit": ["b64"]},
        {"alg": "RS256", "b64": 0, "crit": ["b64"]},
        {"alg": "RS256", "b64": False},  # crit missing
        {"alg": "RS256", "b64": False, "crit": ["b64", "exp"]},  # unknown critical extension
        {"alg": "RS512", "b64": False, "crit": ["b64"]},
        {"alg": "PS256", "b64": False, "crit": ["b64"]},
    ],
)
def test_validly_signed_but_wrong_header_is_refused(header: dict[str, Any]) -> None:
    key = rsa_key()
    with pytest.raises(SignatureError) as info:
        jws.verify(sign_detached(BODY, key, header=header), BODY, jwks_for(key))
    assert not isinstance(info.value, UnknownKeyId)


def test_missing_kid_is_malformed() -> None:
    key = rsa_key()
    header = encode_header(SALEOR_HEADER)
    signature = f"{header}..{rs256(key, header.encode() + b'.' + BODY)}"
    for call in (lambda: jws.key_id(signature), lambda: jws.verify(signature, BODY, jwks_for(key))):
        with pytest.raises(SignatureError) as info:
            call()
        assert not isinstance(info.value, UnknownKeyId)


def test_attached_payload_is_refused() -> None:
    # A b64=true style JWS over the same body must not pass as a webhook signature.
    key = rsa_key()
    header = encode_header({**SALEOR_HEADER, "kid": KID})
    payload = b64url(BODY)
    attached = f"{header}.{payload}.{rs256(key, f'{header}.{payload}'.encode())}"
    with pytest.raises(SignatureError):
        jws.verify(attached, BODY, jwks_for(key))


def test_short_or_odd_keys_are_refused() -> None:
    key = rsa_key()
    signature = sign_detached(BODY, key)
    good = jwk_for(key)
    for broken in (
        {**good, "n": good["n"][:100]},  # 600-bit modulus
        {**good, "e": "AAAA"},  # e = 0
        {**good, "n": "not base64!"},
        {**good, "kty": "oct"},
        {**good, "alg": "RS512"},
        {**good, "use": "enc"},
        {key_: value for key_, value in good.items() if key_ != "n"},
    ):
        with pytest.raises(SignatureError):
            jws.verify(signature, BODY, {"keys": [broken]})
    for jwks in ({}, {"keys": "x"}, {"keys": None}):
        with pytest.raises(SignatureError):
            jws.verify(signature, BODY, jwks)


# --- fuzzing: hostile input only ever gives SignatureError ------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_header_like = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "none", "HS256", ""]) | _json,
        "b64": st.sampled_from([False, True]) | _json,
        "crit": st.just(["b64"]) | _json,
        "kid": st.just(KID) | _json,
    },
)


@given(signature=st.text(max_size=400), body=st.binary(max_size=200))
def test_fuzz_random_text(signature: str, body: bytes) -> None:
    _only_signature_errors(signature, body)


@given(
    header=st.binary(max_size=80) | _header_like.map(lambda h: json.dumps(h).encode()),
    middle=st.sampled_from(["", "e30"]),
    sig=st.binary(max_size=300),
    body=st.binary(max_size=100),
)
def test_fuzz_structured(header: bytes, middle: str, sig: bytes, body: bytes) -> None:
    _only_signature_errors(f"{b64url(header)}.{middle}.{b64url(sig)}", body)


@given(st.binary(max_size=400))
def test_fuzz_random_bytes_as_signature(raw: bytes) -> None:
    _only_signature_errors(raw.decode("latin-1"), raw)


def _only_signature_errors(signature: str, body: bytes) -> None:
    jwks = jwks_for(rsa_key())
    for call in (
        lambda: jws.verify(signature, body, jwks),
        lambda: jws.key_id(signature),
        lambda: jws.verify_jwt(signature, jwks, now=NOW),
    ):
        with contextlib.suppress(SignatureError):
            call()


# --- Dashboard JWTs ---------------------------------------------------------------------


def _claims(**extra: Any) -> dict[str, Any]:
    return {"iat": int(NOW.timestamp()), "exp": int((NOW + timedelta(minutes=5)).timestamp()), **extra}


def test_jwt_returns_claims() -> None:
    key = rsa_key()
    claims = _claims(app="QXBwOjE=", user_permissions=["MANAGE_APPS"])
    assert jws.verify_jwt(sign_jwt(claims, key), jwks_for(key), now=NOW) == claims


def test_jwt_expiry_uses_the_injected_clock() -> None:
    key = rsa_key()
    token = sign_jwt(_claims(), key)
    jws.verify_jwt(token, jwks_for(key), now=NOW + timedelta(minutes=4, seconds=59))
    with pytest.raises(ExpiredToken):
        jws.verify_jwt(token, jwks_for(key), now=NOW + timedelta(minutes=5))
    jws.verify_jwt(token, jwks_for(key), now=NOW + timedelta(minutes=5), leeway=timedelta(seconds=30))
    with pytest.raises(ValueError, match="timezone"):
        jws.verify_jwt(token, jwks_for(key), now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": 1},
        {"exp": "2099-01-01"},
        {"exp": True},
        {"exp": 10**400},
        {"exp": float("inf")},
        {"exp": 4102444800, "nbf": 4102444800},
    ],
)
def test_jwt_bad_times(claims: dict[str, Any]) -> None:
    key = rsa_key()
    with pytest.raises(SignatureError):
        jws.verify_jwt(sign_jwt(claims, key), jwks_for(key), now=NOW)


def test_jwt_forgeries() -> None:
    key, other = rsa_key(), rsa_key(1)
    token = sign_jwt(_claims(), key)
    header, payload, signature = token.split(".")
    forged_payload = b64url(json.dumps(_claims(is_staff=True)).encode())
    none_header = encode_header({"alg": "none", "kid": KID})
    for forged in (
        f"{header}.{forged_payload}.{signature}",
        f"{none_header}.{payload}.",
        f"{none_header}.{payload}.{signature}",
        sign_jwt(_claims(), other),
        sign_jwt(_claims(), key, header={"alg": "RS256", "kid": KID, "b64": False, "crit": ["b64"]}),
        f"{header}..{signature}",
    ):
        with pytest.raises(SignatureError):
            jws.verify_jwt(forged, jwks_for(key), now=NOW)
    with pytest.raises(UnknownKeyId):
        jws.verify_jwt(sign_jwt(_claims(), key, "other"), jwks_for(key), now=NOW)
