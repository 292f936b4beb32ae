"""``POST /api/register`` under attack (issue 11, items 1 and 5).

KOM runs in-process; the Saleor it calls back is a small server on loopback whose name
(``shop.test``) only the test's resolver knows. Refused addresses are never connected to:
the resolver (or the literal address) is refused before any connection is opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.saleor import jws
from plugin.store.store import ChannelSettings
from tests.saleor.signing import jwk_for, jwks_for, rsa_key
from tests.security.helpers import Kom, MiniSaleor, kom, serve_mini_saleor

OWNER, INTRUDER = "QXBwOjE=", "QXBwOjI="
KEY = "klarna_test_api_c2F2ZWQta2V5LWZvci1zaG9w"


@pytest.fixture
def saleor() -> MiniSaleor:
    return MiniSaleor(apps={"owner-token": OWNER, "intruder-token": INTRUDER})


@pytest.fixture
def port(saleor: MiniSaleor) -> Iterator[str]:
    with serve_mini_saleor(saleor) as served:
        yield served


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kom]:
    async with kom(tmp_path, allowed="127.0.0.0/8", names={"shop.test": ["127.0.0.1"]}) as built:
        yield built


def api_url(port: str) -> str:
    return f"http://shop.test:{port}/graphql/"


async def register(k: Kom, url: str, token: str = "owner-token") -> Any:
    sent = {"Saleor-Api-Url": url.encode()}  # a header carries bytes: non-ASCII names arrive as UTF-8
    return await k.client.post("/api/register", json={"auth_token": token}, headers=sent)


async def installed_with_settings(k: Kom, port: str) -> int:
    assert (await register(k, api_url(port))).status_code == 200
    installation = await k.store.installation_by_url(api_url(port))
    assert installation is not None and installation.app_id == OWNER
    await k.store.save_settings(
        installation.id, ChannelSettings("", "klarna", "playground", "eu", KEY, None, None)
    )
    return installation.id


# -- 1. no takeover through re-registration ---------------------------------------------------


async def test_first_install_resolves_once_and_keeps_the_name(k: Kom, saleor: MiniSaleor, port: str) -> None:
    response = await register(k, api_url(port))
    assert response.status_code == 200, response.text
    assert k.resolver.calls == ["shop.test"]  # one resolution for the token check and the JWKS
    assert saleor.hosts == [f"shop.test:{port}"] * 2  # connected to 127.0.0.1, Host kept
    installation = await k.store.installation_by_url(api_url(port))
    assert installation is not None and installation.token == "owner-token"
    assert [key["kid"] for key in installation.jwks["keys"]] == ["kom-test-key"]


async def test_another_apps_token_cannot_take_the_installation_over(k: Kom, port: str) -> None:
    installation_id = await installed_with_settings(k, port)
    response = await register(k, api_url(port), "intruder-token")
    assert response.status_code == 403
    assert "already installed for this Saleor as another app" in response.json()["error"]["message"]
    kept = await k.store.installation_by_url(api_url(port))
    assert kept is not None and (kept.id, kept.app_id, kept.token) == (installation_id, OWNER, "owner-token")
    settings = await k.store.settings_for(installation_id, None)
    assert settings is not None and settings.api_key == KEY


async def test_a_real_reinstall_starts_without_settings_or_credentials(
    k: Kom, saleor: MiniSaleor, port: str
) -> None:
    old_id = await installed_with_settings(k, port)
    saleor.apps["owner-token"] = None  # the old app was deleted: Saleor no longer knows its token
    response = await register(k, api_url(port), "intruder-token")
    assert response.status_code == 200, response.text
    new = await k.store.installation_by_url(api_url(port))
    assert new is not None and new.app_id == INTRUDER and new.token == "intruder-token"
    assert await k.store.settings_for(new.id, None) is None
    assert await k.store.settings_for(old_id, None) is None
    assert [i.id for i in await k.store.installations()] == [new.id]


async def test_a_new_token_of_the_same_app_keeps_the_settings(k: Kom, saleor: MiniSaleor, port: str) -> None:
    installation_id = await installed_with_settings(k, port)
    saleor.apps["owner-token-2"] = OWNER
    assert (await register(k, api_url(port), "owner-token-2")).status_code == 200
    kept = await k.store.installation_by_url(api_url(port))
    assert kept is not None and kept.id == installation_id and kept.token == "owner-token-2"
    assert (await k.store.settings_for(installation_id, None)) is not None


async def test_when_saleor_cannot_judge_the_stored_token_nothing_changes(
    k: Kom, saleor: MiniSaleor, port: str
) -> None:
    installation_id = await installed_with_settings(k, port)
    saleor.failing.add("owner-token")
    response = await register(k, api_url(port), "intruder-token")
    assert response.status_code == 503
    kept = await k.store.installation_by_url(api_url(port))
    assert kept is not None and kept.app_id == OWNER
    assert await k.store.settings_for(installation_id, None) is not None


async def test_a_token_saleor_does_not_confirm_is_401(k: Kom, port: str) -> None:
    response = await register(k, api_url(port), "made-up-token")
    assert response.status_code == 401
    assert await k.store.installations() == []


# -- 3. key sets over the caps are refused at install --------------------------------------------


def _huge_modulus(bits: int) -> str:
    from tests.saleor.signing import b64url

    n = (1 << (bits - 1)) | 1  # any odd number of that size costs the same to verify with
    return b64url(n.to_bytes(bits // 8, "big"))


@pytest.mark.parametrize(
    ("jwks", "words"),
    [
        ({"keys": [jwk_for(rsa_key(), f"k{i}") for i in range(9)]}, "at most 8"),
        ({"keys": [jwk_for(rsa_key(), "same"), jwk_for(rsa_key(1), "same")]}, "one kid for several keys"),
        ({"keys": [{**jwk_for(rsa_key()), "n": _huge_modulus(16384)}]}, "longer than 4096 bits"),
        ({"keys": [{**jwk_for(rsa_key()), "e": "AQAAAAAB"}]}, "exponent"),
        (b'{"keys": [' + b" " * (65 * 1024) + b"]}", "larger than 65536 bytes"),
    ],
)
async def test_a_key_set_over_the_caps_is_refused(
    k: Kom, saleor: MiniSaleor, port: str, jwks: Any, words: str
) -> None:
    saleor.jwks = jwks
    response = await register(k, api_url(port))
    assert response.status_code == 401 and words in response.json()["error"]["message"]
    assert await k.store.installations() == []


# -- 5. addresses: only public ones, names that resolve, no details echoed ----------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://metadata.test/graphql/",  # the resolver says 100.100.100.200 (Alibaba's metadata)
        "https://cgnat.test/graphql/",
        "https://mixed.test/graphql/",  # one public, one private answer
        "https://100.100.100.200/graphql/",
        "https://169.254.169.254/graphql/",
        "https://127.0.0.1:6379/graphql/",
        "https://[::1]/graphql/",
        "https://[::ffff:169.254.169.254]/graphql/",
        "https://[2002:a9fe:a9fe::1]/graphql/",  # 6to4 of 169.254.169.254
        "https://[64:ff9b::7f00:1]/graphql/",  # NAT64 of 127.0.0.1
        "https://[fd00::1]/graphql/",
    ],
)
async def test_non_public_saleor_addresses_are_403(tmp_path: Path, url: str) -> None:
    names = {
        "metadata.test": ["100.100.100.200"],
        "cgnat.test": ["100.64.1.1"],
        "mixed.test": ["93.184.216.34", "10.0.0.5"],
    }
    async with kom(tmp_path, names=names) as k:
        response = await register(k, url)
        assert response.status_code == 403, response.text
        assert "not on a public address" in response.json()["error"]["message"]
        assert await k.store.installations() == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://nowhere.test/graphql/", "does not resolve"),
        ("https://xn--zz.test/graphql/", "not a valid (IDNA) host name"),
        ("https://exa\u00admple..test/graphql/", "not a valid (IDNA) host name"),
        ("https://" + "a" * 64 + ".test/graphql/", "not a valid (IDNA) host name"),
    ],
)
async def test_names_that_do_not_resolve_or_encode_are_400(tmp_path: Path, url: str, words: str) -> None:
    async with kom(tmp_path) as k:
        response = await register(k, url)
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert words in message and "resolver detail" not in message and "Errno" not in message


async def test_tls_errors_are_not_echoed(tmp_path: Path, port: str) -> None:
    # https:// to a server that speaks plain http: the handshake fails inside KOM.
    async with kom(tmp_path, allowed="127.0.0.0/8", names={"shop.test": ["127.0.0.1"]}) as k:
        response = await register(k, f"https://shop.test:{port}/graphql/")
        assert response.status_code == 401
        text = response.text.lower()
        assert "ssl" not in text and "tls" not in text and "certificate" not in text and "errno" not in text


async def test_register_is_rate_limited_per_client(k: Kom) -> None:
    statuses = [
        (await k.client.post("/api/register", content=b"[]", headers={"Saleor-Api-Url": "x"})).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [403] * 10 and statuses[10] == 429
    limited = await k.client.post("/api/register", content=b"[]")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_the_caps_refuse_before_any_rsa_work() -> None:
    # 2,000 keys of 16,384 bits under one kid (the hostile set) is refused by counting.
    hostile = {"keys": [{"kty": "RSA", "kid": "k", "n": _huge_modulus(16384), "e": "AQAB"}] * 2000}
    with pytest.raises(jws.UnusableKeySet, match="2000 keys"):
        jws.KeySet.parse(hostile)
    assert jwks_for(rsa_key())["keys"][0]["kid"] in jws.KeySet.parse(jwks_for(rsa_key()))
