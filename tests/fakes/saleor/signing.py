"""Saleor's signing key: JWKS, detached-payload webhook signatures and Dashboard JWTs.

Saleor signs with one RSA key (``RSA_PRIVATE_KEY``); its ``kid`` is the RFC 7638 thumbprint
and ``/.well-known/jwks.json`` serves that single key, so a rotation replaces the key set.
Webhooks carry ``<b64url(header)>..<b64url(sig)>`` (RFC 7797: detached, unencoded) over
``b64url(header) + "." + raw body``. ``verify_detached`` is the tests' independent check.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["SigningKey", "b64url", "b64url_decode", "verify_detached", "verify_jwt"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _compact(obj: object) -> bytes:
    # PyJWT (which Saleor uses) writes headers compact with sorted keys.
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


class SigningKey:
    """One RSA key pair; ``SigningKey()`` generates a fresh one (a rotation = a new instance)."""

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private_key.public_key().public_numbers()
        self._n, self._e = _int_b64(numbers.n), _int_b64(numbers.e)
        thumbprint_input = _compact({"e": self._e, "kty": "RSA", "n": self._n})
        self.kid = b64url(hashlib.sha256(thumbprint_input).digest())

    def jwk(self) -> dict[str, Any]:
        # Same members as the captured jwks.json of a real 3.23.28.
        return {
            "kty": "RSA",
            "key_ops": ["verify"],
            "n": self._n,
            "e": self._e,
            "use": "sig",
            "kid": self.kid,
            "alg": "RS256",
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def _sign(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def sign_detached(self, body: bytes) -> str:
        """The ``Saleor-Signature`` header for ``body`` (also for an empty body)."""
        header = b64url(
            _compact({"alg": "RS256", "b64": False, "crit": ["b64"], "kid": self.kid, "typ": "JWT"})
        )
        signature = self._sign(header.encode() + b"." + body)
        return f"{header}..{b64url(signature)}"

    def encode_jwt(self, claims: dict[str, Any]) -> str:
        header = b64url(_compact({"alg": "RS256", "kid": self.kid, "typ": "JWT"}))
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{b64url(self._sign(signing_input))}"


def _public_key(jwks: dict[str, Any], kid: str) -> rsa.RSAPublicKey:
    for jwk in jwks.get("keys", []):
        if jwk.get("kid") == kid and jwk.get("kty") == "RSA":
            n = int.from_bytes(b64url_decode(jwk["n"]), "big")
            e = int.from_bytes(b64url_decode(jwk["e"]), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
    raise ValueError(f"kid {kid!r} not in the key set")


def _check(public_key: rsa.RSAPublicKey, signature: bytes, signing_input: bytes) -> None:
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("signature does not verify") from None


def verify_detached(signature: str, body: bytes, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check a ``Saleor-Signature`` over ``body``; the JWS header, or ``ValueError``."""
    header_segment, empty, signature_segment = signature.split(".")
    if empty:
        raise ValueError("payload segment must be empty (detached)")
    header: dict[str, Any] = json.loads(b64url_decode(header_segment))
    if header.get("alg") != "RS256" or header.get("b64") is not False or header.get("crit") != ["b64"]:
        raise ValueError(f"unexpected JWS header {header}")
    key = _public_key(jwks, header["kid"])
    _check(key, b64url_decode(signature_segment), header_segment.encode() + b"." + body)
    return header


def verify_jwt(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check an RS256 JWT's signature (not its claims); its payload, or ``ValueError``."""
    header_segment, payload_segment, signature_segment = token.split(".")
    header = json.loads(b64url_decode(header_segment))
    if header.get("alg") != "RS256":
        raise ValueError(f"unexpected alg in {header}")
    key = _public_key(jwks, header["kid"])
    _check(key, b64url_decode(signature_segment), f"{header_segment}.{payload_segment}".encode())
    claims: dict[str, Any] = json.loads(b64url_decode(payload_segment))
    return claims
