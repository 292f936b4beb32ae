"""Sign like Saleor does, for tests: detached RS256 JWS over webhook bodies, RS256 JWTs.

Reusable by any test that needs a signed webhook or Dashboard token::

    key = rsa_key()
    jwks = jwks_for(key, KID)
    headers = {"Saleor-Signature": sign_detached(body, key, KID)}

Keys are generated once per process (RSA generation is slow) and never leave the tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KID = "kom-test-key"
SALEOR_HEADER: dict[str, Any] = {"alg": "RS256", "b64": False, "crit": ["b64"], "typ": "JWT"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@functools.cache
def rsa_key(slot: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, the same one per ``slot`` for the whole test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_for(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, kid: str = KID) -> dict[str, Any]:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    numbers = public.public_numbers()

    def encode(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": encode(numbers.n),
        "e": encode(numbers.e),
    }


def jwks_for(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, kid: str = KID) -> dict[str, Any]:
    return {"keys": [jwk_for(key, kid)]}


def encode_header(header: dict[str, Any]) -> str:
    return b64url(json.dumps(header, separators=(",", ":")).encode())


def rs256(key: rsa.RSAPrivateKey, signing_input: bytes) -> str:
    return b64url(key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


def sign_detached(
    body: bytes, private_key: rsa.RSAPrivateKey, kid: str = KID, *, header: dict[str, Any] | None = None
) -> str:
    """``Saleor-Signature`` for ``body``: ``<b64url(header)>..<b64url(RS256 signature)>``.

    ``header`` replaces Saleor's header fields (``kid`` is added unless given), so tests
    can forge variants such as a missing ``b64`` that are still validly signed.
    """
    fields = {**SALEOR_HEADER, "kid": kid} if header is None else {"kid": kid, **header}
    encoded = encode_header(fields)
    return f"{encoded}..{rs256(private_key, encoded.encode('ascii') + b'.' + body)}"


def sign_hs256_detached(body: bytes, secret: bytes, kid: str = KID) -> str:
    """A forged detached signature using HMAC (e.g. with the public key as the secret)."""
    encoded = encode_header({**SALEOR_HEADER, "alg": "HS256", "kid": kid})
    mac = hmac.new(secret, encoded.encode("ascii") + b"." + body, hashlib.sha256).digest()
    return f"{encoded}..{b64url(mac)}"


def sign_jwt(
    claims: dict[str, Any],
    private_key: rsa.RSAPrivateKey,
    kid: str = KID,
    *,
    header: dict[str, Any] | None = None,
) -> str:
    """An RS256 JWT as the Dashboard receives it (attached payload)."""
    encoded = encode_header({"alg": "RS256", "typ": "JWT", "kid": kid} if header is None else header)
    payload = b64url(json.dumps(claims).encode())
    return f"{encoded}.{payload}.{rs256(private_key, f'{encoded}.{payload}'.encode('ascii'))}"
