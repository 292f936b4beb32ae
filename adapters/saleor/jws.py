"""Saleor's webhook signatures and Dashboard tokens, checked with ``cryptography`` only.

Webhooks carry ``Saleor-Signature``: a compact JWS over the raw body with a *detached,
unencoded* payload (RFC 7797), ``<b64url(header)>..<b64url(signature)>``, header
``{"alg":"RS256","b64":false,"crit":["b64"],"kid":...}``. The signing input is
``b64url(header) + "." + raw body bytes``, so the exact bytes received must be verified:
Saleor's body is ``json.dumps`` output and any re-serialisation breaks the signature.

Dashboard tokens (``verify_jwt``) are ordinary RS256 JWTs signed with the same key set.

Everything here sees attacker input, so every failure is a ``SignatureError`` (or its
subclasses) and never another exception type; the caller answers 401 and, for
``UnknownKeyId`` only, refetches the JWKS once (rate-limited) because Saleor rotated keys.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["ExpiredToken", "SignatureError", "UnknownKeyId", "key_id", "verify", "verify_jwt"]

# Generous bounds: Saleor's header is ~150 characters, an RS256 signature of a 4096-bit
# key 683. They keep hostile input from costing more than a few microseconds.
_MAX_HEADER = 2048
_MAX_SEGMENT = 64 * 1024
_MIN_KEY_BITS = 2048
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALG = "RS256"


class SignatureError(ValueError):
    """The signature or token is malformed, uses a refused algorithm, or does not verify."""


class UnknownKeyId(SignatureError):
    """The ``kid`` is not in the key set: refetch the JWKS (once, rate-limited) and retry."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"signing key {kid!r} is not in the JWKS")
        self.kid = kid


class ExpiredToken(SignatureError):
    """A correctly signed token whose ``exp`` has passed: the page should ask for a fresh one."""


def key_id(signature: str) -> str:
    """The ``kid`` from a detached JWS header (to pick or refetch the key set)."""
    header_segment, _ = _split_detached(signature)
    return _kid(_header(header_segment))


def verify(signature: str, body: bytes, jwks: dict[str, Any]) -> None:
    """Check ``Saleor-Signature`` over the raw request body; return only if it is valid."""
    header_segment, signature_segment = _split_detached(signature)
    header = _header(header_segment)
    _require_rs256(header)
    # RFC 7797: b64=false changes how the payload is signed, so it must be marked critical;
    # a header that claims it without "crit" (or adds extensions we don't know) is refused.
    if header.get("b64") is not False:
        raise SignatureError("signature header must have b64=false (detached, unencoded payload)")
    if header.get("crit") != ["b64"]:
        raise SignatureError('signature header must have crit=["b64"]')
    if not isinstance(body, bytes | bytearray):
        raise SignatureError("body must be bytes")
    signing_input = header_segment.encode("ascii") + b"." + bytes(body)
    _check(signing_input, _b64decode(signature_segment), _kid(header), jwks)


def verify_jwt(
    token: str, jwks: dict[str, Any], *, now: datetime, leeway: timedelta = timedelta(0)
) -> dict[str, Any]:
    """Verify an RS256 JWT (attached payload) and return its claims.

    ``exp`` is required and compared with the injected ``now`` (timezone-aware);
    ``nbf``, when present, too. Audience, issuer and app checks are the caller's.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")  # a programming error, not attacker input
    if not isinstance(token, str) or len(token) > 3 * _MAX_SEGMENT:
        raise SignatureError("token is not a compact JWT")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts) or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise SignatureError("token is not a compact JWT")
    header_segment, payload_segment, signature_segment = parts
    header = _header(header_segment)
    _require_rs256(header)
    if "crit" in header or header.get("b64", True) is not True:
        raise SignatureError("token header uses extensions this verifier does not support")
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    _check(signing_input, _b64decode(signature_segment), _kid(header), jwks)
    claims = _json_object(_b64decode(payload_segment), "token claims")
    _check_times(claims, now.timestamp(), leeway.total_seconds())
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


def _b64decode(segment: str) -> bytes:
    if len(segment) % 4 == 1:
        raise SignatureError("invalid base64url segment")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("invalid base64url segment") from exc


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"{what} are not JSON") from exc
    if not isinstance(value, dict):
        raise SignatureError(f"{what} are not a JSON object")
    return value


def _header(segment: str) -> dict[str, Any]:
    if len(segment) > _MAX_HEADER:
        raise SignatureError("signature header is too long")
    return _json_object(_b64decode(segment), "signature header fields")


def _require_rs256(header: dict[str, Any]) -> None:
    # Never let the token pick the algorithm: "none" and HS256-with-the-public-key are the
    # classic forgeries.
    if header.get("alg") != _ALG:
        raise SignatureError(f"algorithm {str(header.get('alg'))[:20]!r} refused; only RS256 is accepted")


def _kid(header: dict[str, Any]) -> str:
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("signature header has no key id")
    return kid


def _check(signing_input: bytes, signature: bytes, kid: str, jwks: dict[str, Any]) -> None:
    keys = [key for key in _jwk_list(jwks) if key.get("kid") == kid]
    if not keys:
        raise UnknownKeyId(kid)
    for jwk in keys:
        try:
            _public_key(jwk).verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return
        except InvalidSignature:
            continue
    raise SignatureError("signature does not match the body")


def _jwk_list(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise SignatureError("JWKS has no key list")
    return [key for key in keys if isinstance(key, dict)]


def _public_key(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    if jwk.get("kty") != "RSA":
        raise SignatureError("JWKS key is not an RSA key")
    if jwk.get("alg", _ALG) != _ALG or jwk.get("use", "sig") != "sig":
        raise SignatureError("JWKS key is not meant for RS256 signatures")
    n, e = jwk.get("n"), jwk.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        raise SignatureError("JWKS key lacks n or e")
    return _rsa_key(n, e)


@functools.lru_cache(maxsize=16)
def _rsa_key(n: str, e: str) -> rsa.RSAPublicKey:
    # Cached: the key set changes only on rotation, and every webhook uses the same key.
    if not _SEGMENT.fullmatch(n) or not _SEGMENT.fullmatch(e) or len(n) > _MAX_SEGMENT:
        raise SignatureError("JWKS key has malformed n or e")
    modulus = int.from_bytes(_b64decode(n), "big")
    exponent = int.from_bytes(_b64decode(e), "big")
    if modulus.bit_length() < _MIN_KEY_BITS:
        raise SignatureError(f"JWKS key is shorter than {_MIN_KEY_BITS} bits")
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError("JWKS key is not a valid RSA public key") from exc


def _check_times(claims: dict[str, Any], now: float, leeway: float) -> None:
    exp = _timestamp(claims.get("exp"))
    if exp is None:
        raise SignatureError("token has no numeric exp claim")
    if now >= exp + leeway:
        raise ExpiredToken("token has expired")
    if "nbf" in claims:
        nbf = _timestamp(claims["nbf"])
        if nbf is None or now < nbf - leeway:
            raise SignatureError("token is not valid yet")


def _timestamp(value: object) -> float | None:
    # JSON allows NaN, Infinity and 400-digit integers; none of them is a usable time.
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
