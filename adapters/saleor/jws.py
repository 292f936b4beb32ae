"""Saleor's webhook signatures and Dashboard tokens: PyJWT verifies, KOM sets the policy around it.

Webhooks carry ``Saleor-Signature``: a compact JWS over the raw body with a *detached,
unencoded* payload (RFC 7797), ``<b64url(header)>..<b64url(signature)>``, header
``{"alg":"RS256","b64":false,"crit":["b64"],"kid":...}``. The signing input is
``b64url(header) + "." + raw body bytes``, so the exact bytes received must be verified:
Saleor's body is ``json.dumps`` output and any re-serialisation breaks the signature.
Dashboard tokens (``verify_jwt``) are ordinary RS256 JWTs signed with the same key set.

PyJWT does the parsing and the RSA check (``decode_complete(..., detached_payload=)``).
KOM's own rules stay here, because PyJWT would accept more:

- only RS256, whatever the header says (no ``none``, no HS256 with the public key);
- webhook signatures must be detached with ``b64=false`` and ``crit=["b64"]``; tokens must
  not use either;
- a key set is usable only within caps (``KeySet.parse``): at most ``MAX_KEYS`` keys, one
  key per ``kid``, RSA moduli of 2048–4096 bits and a public exponent below 2**32. So a
  signature costs at most one RSA verification with a key of at most 4096 bits (~0.1 ms),
  whatever key set a hostile Saleor serves: a 16,384-bit modulus or a huge exponent would
  cost milliseconds of event-loop time per forged request;
- token times are checked against an injected clock.

Everything here sees attacker input, so every failure is a ``SignatureError`` (or a
subclass) and never another exception type.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt import PyJWK

__all__ = [
    "MAX_KEYS",
    "ExpiredToken",
    "KeySet",
    "SignatureError",
    "UnknownKeyId",
    "UnusableKeySet",
    "key_id",
    "verify",
    "verify_jwt",
]

# Generous bounds: Saleor's header is ~150 characters, an RS256 signature of a 4096-bit
# key 683. They keep hostile input from costing more than a few microseconds.
_MAX_HEADER = 2048
_MAX_SEGMENT = 64 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALG = "RS256"

# Key-set caps. Saleor serves exactly one key (its RSA_PRIVATE_KEY's), so these only ever
# refuse a hostile or broken set.
MAX_KEYS = 8
MIN_KEY_BITS = 2048
MAX_KEY_BITS = 4096
_MAX_EXPONENT_BITS = 32
_MAX_KID = 256
_MAX_N_CHARS = (MAX_KEY_BITS // 8 * 4 + 2) // 3 + 1  # base64url of a 4096-bit modulus, plus slack


class SignatureError(ValueError):
    """The signature or token is malformed, uses a refused algorithm, or does not verify."""


class UnknownKeyId(SignatureError):
    """The ``kid`` is not in the key set: Saleor may have rotated its key (refetch, then retry)."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"signing key {kid[:64]!r} is not in the JWKS")
        self.kid = kid


class UnusableKeySet(SignatureError):
    """The JWKS breaks KOM's caps (too many keys, a kid twice, a key too small or too big)."""


class ExpiredToken(SignatureError):
    """A correctly signed token whose ``exp`` has passed: the page should ask for a fresh one."""


@dataclass(frozen=True)
class KeySet:
    """The usable keys of a JWKS, by ``kid``: RSA signature keys within the caps."""

    keys: Mapping[str, PyJWK]
    # The keys as KOM stores them: only the members it uses, whatever else was served.
    document: Mapping[str, Any]

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys

    @classmethod
    def parse(cls, jwks: object) -> KeySet:
        """The key set of a JWKS document, or UnusableKeySet saying which cap it breaks."""
        listed = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(listed, list):
            raise UnusableKeySet("JWKS has no key list")
        if len(listed) > MAX_KEYS:
            raise UnusableKeySet(f"JWKS has {len(listed)} keys; KOM accepts at most {MAX_KEYS}")
        kids = [key["kid"] for key in listed if isinstance(key, Mapping) and isinstance(key.get("kid"), str)]
        if len(set(kids)) != len(kids):
            raise UnusableKeySet("JWKS lists one kid for several keys")
        keys: dict[str, PyJWK] = {}
        kept: list[dict[str, str]] = []
        for jwk in listed:
            member = _rsa_signing_key(jwk)
            if member is not None:
                keys[member["kid"]] = _pyjwk(member)
                kept.append(member)
        return cls(keys=keys, document={"keys": kept})


def _rsa_signing_key(jwk: object) -> dict[str, str] | None:
    """The members KOM needs of an RSA signing key, None for keys of other kinds (ignored)."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "RSA":
        return None
    ops = jwk.get("key_ops")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", _ALG) != _ALG:
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    kid, n, e = jwk.get("kid"), jwk.get("n"), jwk.get("e")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID:
        return None  # keys are picked by kid; Saleor's always has one
    if not isinstance(n, str) or not isinstance(e, str):
        raise UnusableKeySet("JWKS key lacks n or e")
    if len(n) > _MAX_N_CHARS:
        raise UnusableKeySet(f"JWKS key is longer than {MAX_KEY_BITS} bits")
    modulus, exponent = _b64int(n), _b64int(e)
    if not MIN_KEY_BITS <= modulus.bit_length() <= MAX_KEY_BITS:
        raise UnusableKeySet(f"JWKS key is not {MIN_KEY_BITS}–{MAX_KEY_BITS} bits long")
    if exponent < 3 or exponent % 2 == 0 or exponent.bit_length() > _MAX_EXPONENT_BITS:
        raise UnusableKeySet("JWKS key has an unusable public exponent")
    return {"kty": "RSA", "use": "sig", "alg": _ALG, "kid": kid, "n": n, "e": e}


def _pyjwk(member: dict[str, str]) -> PyJWK:
    try:
        return PyJWK(dict(member), algorithm=_ALG)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise UnusableKeySet("JWKS key is not a valid RSA public key") from exc


def _keyset(keys: KeySet | Mapping[str, Any]) -> KeySet:
    return keys if isinstance(keys, KeySet) else KeySet.parse(keys)


def key_id(signature: str) -> str:
    """The ``kid`` from a detached JWS header (to pick or refetch the key set)."""
    header_segment, _ = _split_detached(signature)
    return _kid(_header(header_segment, signature))


def verify(signature: str, body: bytes, keys: KeySet | Mapping[str, Any]) -> None:
    """Check ``Saleor-Signature`` over the raw request body; return only if it is valid."""
    header_segment, _ = _split_detached(signature)
    header = _header(header_segment, signature)
    _require_rs256(header)
    # RFC 7797: b64=false changes how the payload is signed, so it must be marked critical;
    # a header that claims it without "crit" (or adds extensions we don't know) is refused.
    if header.get("b64") is not False:
        raise SignatureError("signature header must have b64=false (detached, unencoded payload)")
    if header.get("crit") != ["b64"]:
        raise SignatureError('signature header must have crit=["b64"]')
    if not isinstance(body, bytes | bytearray):
        raise SignatureError("body must be bytes")
    key = _key(_keyset(keys), _kid(header))
    try:
        jwt.api_jws.decode_complete(signature, key.key, algorithms=[_ALG], detached_payload=bytes(body))
    except jwt.InvalidSignatureError:
        raise SignatureError("signature does not match the body") from None
    except jwt.PyJWTError as exc:
        raise SignatureError(f"signature is not valid: {exc}") from None


def verify_jwt(
    token: str,
    keys: KeySet | Mapping[str, Any],
    *,
    now: datetime,
    leeway: timedelta = timedelta(0),
    max_lifetime: timedelta | None = None,
) -> dict[str, Any]:
    """Verify an RS256 JWT (attached payload) and return its claims.

    ``exp`` is required and compared with the injected ``now`` (timezone-aware); ``nbf``,
    when present, too. With ``max_lifetime``, ``iat`` is required too, may not lie in the
    future, and ``exp - iat`` may not exceed it. Issuer, audience and app are the caller's.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")  # a programming error, not attacker input
    if not isinstance(token, str) or len(token) > 3 * _MAX_SEGMENT:
        raise SignatureError("token is not a compact JWT")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts) or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise SignatureError("token is not a compact JWT")
    header = _header(parts[0], token)
    _require_rs256(header)
    if "crit" in header or "b64" in header:
        raise SignatureError("token header uses extensions this verifier does not support")
    key = _key(_keyset(keys), _kid(header))
    # Times are checked below against the injected clock; PyJWT would use the system's.
    options: Any = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
    }
    try:
        claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=[_ALG], options=options)
    except jwt.InvalidSignatureError:
        raise SignatureError("token signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise SignatureError(f"token is not valid: {exc}") from None
    _check_times(claims, now.timestamp(), leeway.total_seconds(), max_lifetime)
    return claims


def _split_detached(signature: str) -> tuple[str, str]:
    if not isinstance(signature, str) or len(signature) > _MAX_HEADER + _MAX_SEGMENT:
        raise SignatureError("signature is not a detached compact JWS")
    parts = signature.strip().split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise SignatureError("signature is not a detached compact JWS")
    header_segment, payload_segment, signature_segment = parts
    if payload_segment:
        raise SignatureError("signature carries an attached payload; Saleor's is detached")
    if not header_segment or not signature_segment:
        raise SignatureError("signature has an empty header or signature segment")
    return header_segment, signature_segment


def _header(segment: str, compact: str) -> dict[str, Any]:
    if len(segment) > _MAX_HEADER:
        raise SignatureError("signature header is too long")
    if len(segment) % 4 == 1:
        raise SignatureError("invalid base64url segment")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyJWT deprecation notes are no attacker's concern
            header: dict[str, Any] = jwt.get_unverified_header(compact.strip())
    except (jwt.PyJWTError, binascii.Error, ValueError, RecursionError) as exc:
        raise SignatureError("signature header fields are not a JSON object") from exc
    return header


def _require_rs256(header: dict[str, Any]) -> None:
    # Never let the token pick the algorithm: "none" and HS256-with-the-public-key are the
    # classic forgeries. PyJWT is told the same (algorithms=["RS256"]).
    if header.get("alg") != _ALG:
        raise SignatureError(f"algorithm {str(header.get('alg'))[:20]!r} refused; only RS256 is accepted")


def _kid(header: dict[str, Any]) -> str:
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("signature header has no key id")
    return kid


def _key(keys: KeySet, kid: str) -> PyJWK:
    key = keys.keys.get(kid)
    if key is None:
        raise UnknownKeyId(kid)
    return key


def _b64int(text: str) -> int:
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise UnusableKeySet("JWKS key has malformed n or e")
    try:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")
    except (binascii.Error, ValueError) as exc:
        raise UnusableKeySet("JWKS key has malformed n or e") from exc


def _check_times(claims: dict[str, Any], now: float, leeway: float, max_lifetime: timedelta | None) -> None:
    exp = _timestamp(claims.get("exp"))
    if exp is None:
        raise SignatureError("token has no numeric exp claim")
    if now >= exp + leeway:
        raise ExpiredToken("token has expired")
    if "nbf" in claims:
        nbf = _timestamp(claims["nbf"])
        if nbf is None or now < nbf - leeway:
            raise SignatureError("token is not valid yet")
    if max_lifetime is None:
        return
    iat = _timestamp(claims.get("iat"))
    if iat is None:
        raise SignatureError("token has no numeric iat claim")
    if iat > now + leeway:
        raise SignatureError("token was issued in the future")
    if exp - iat > max_lifetime.total_seconds():
        raise SignatureError(f"token lives longer than {int(max_lifetime.total_seconds())} s")


def _timestamp(value: object) -> float | None:
    # JSON allows NaN, Infinity and 400-digit integers; none of them is a usable time.
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
