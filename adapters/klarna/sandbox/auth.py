"""HTTP Basic authentication the way Klarna/Kustom describe it (klarna-api.md §2.2).

Reading of the docs, as implemented:
  * API key (`klarna_test_api_…` / `kco_test_api_…`), sent as `Authorization: Basic <API key>`:
    the key itself follows "Basic ", not base64-encoded. Also accepted: standard Basic
    encoding with the key as user name and an empty password, base64("<key>:"), which is
    what generic HTTP clients (httpx.BasicAuth(key, "")) send.
  * API key as password with its user name: base64("<username>:<key>"). "If you send the
    username, it must be the right one": a key paired with another user name is refused.
  * Legacy credentials: base64("<username>:<shared secret>") for a configured pair.
Anything else (no header, other scheme, unknown key, wrong pair) is 401.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    # legacy username -> shared secret
    pairs: Mapping[str, str] = field(default_factory=dict)
    # API key -> the user name shown next to it in the portal (None: key only)
    api_keys: Mapping[str, str | None] = field(default_factory=dict)

    def accepts(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "basic" or not token:
            return False
        if any(_same(token, key) for key in self.api_keys):
            return True
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            return False
        user, colon, password = decoded.partition(":")
        if not colon:
            return False
        if password == "":
            return user in self.api_keys
        if password in self.api_keys:
            expected = self.api_keys[password]
            return expected is not None and _same(user, expected)
        secret = self.pairs.get(user)
        return secret is not None and _same(password, secret)


def _same(given: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str, so compare the UTF-8 bytes
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


DEMO_API_KEY = "klarna_test_api_c2FuZGJveC1kZW1vLWtleQ"
DEMO_KEY_USERNAME = "6f1b5a6e-3c53-4f5e-9c38-5d9d0c1a7e21"
DEMO_USERNAME = "PK12345_sandbox"
DEMO_PASSWORD = "sandbox-shared-secret"

DEMO_CREDENTIALS = Credentials(
    pairs={DEMO_USERNAME: DEMO_PASSWORD}, api_keys={DEMO_API_KEY: DEMO_KEY_USERNAME}
)
