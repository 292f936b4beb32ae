"""Secrets at rest: AES-256-GCM with a key derived from ``KOM_SECRET_KEY``.

``KOM_SECRET_KEY`` may list several keys separated by commas: the first encrypts, all of
them decrypt, so a key can be rotated without downtime (add the new key in front, restart,
re-save secrets, then drop the old key).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"k1"
_NONCE = 12


class SecretError(RuntimeError):
    """A secret could not be encrypted or decrypted (missing or wrong KOM_SECRET_KEY)."""


def _derive(secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"kom-secrets", info=b"kom secrets v1").derive(
        secret.encode()
    )
    return AESGCM(key)


class SecretBox:
    def __init__(self, secret_keys: str | None) -> None:
        keys = [k.strip() for k in (secret_keys or "").split(",") if k.strip()]
        if any(len(k) < 16 for k in keys):
            raise SecretError("KOM_SECRET_KEY must be at least 16 characters (use 32+ random ones)")
        self._boxes = [_derive(k) for k in keys]

    @property
    def configured(self) -> bool:
        return bool(self._boxes)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. the row it belongs to) is authenticated too."""
        if not self._boxes:
            raise SecretError("KOM_SECRET_KEY is not set: secrets cannot be stored")
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._boxes[0].encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if not blob.startswith(_VERSION):
            raise SecretError("unknown secret format")
        nonce, ciphertext = blob[2 : 2 + _NONCE], blob[2 + _NONCE :]
        for box in self._boxes:
            try:
                return box.decrypt(nonce, ciphertext, context.encode()).decode()
            except InvalidTag:
                continue
        raise SecretError("no KOM_SECRET_KEY decrypts this secret (was the key changed?)")
