"""Refetching Saleor's keys (issue 11, items 3 and 4): prompt, single-flight, bounded, unforgeable.

The Saleor is a small server on loopback that counts JWKS fetches; KOM's SigningKeys run
with a short ``min_interval`` so the tests take fractions of a second.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from adapters.saleor import jws
from adapters.saleor.keys import JwksUnavailable, SigningKeys, install
from plugin.service.records import Installation
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from plugin.web.egress import Egress, parse_networks
from tests.saleor.signing import jwk_for, jwks_for, rsa_key, sign_detached
from tests.security.helpers import SECRET, Kom, MiniSaleor, Resolver, kom, serve_mini_saleor

BODY = b'{"__typename": "FulfillmentCreated"}'
OLD, NEW = rsa_key(0), rsa_key(1)


@pytest.fixture
def saleor() -> MiniSaleor:
    return MiniSaleor(apps={"t0ken": "QXBwOjE="}, jwks=jwks_for(NEW, "new"))  # rotated since the install


@pytest.fixture
def port(saleor: MiniSaleor) -> Iterator[str]:
    with serve_mini_saleor(saleor) as served:
        yield served


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'kom.db'}", SecretBox(SECRET))
    yield opened
    await opened.close()


def policy() -> Egress:
    return Egress(
        allowed_networks=parse_networks("127.0.0.0/8"), resolver=Resolver({"shop.test": ["127.0.0.1"]})
    )


async def installed(store: Store, port: str) -> Installation:
    return await store.save_installation(
        platform="saleor",
        api_url=f"http://shop.test:{port}/graphql/",
        app_id="QXBwOjE=",
        token="t0ken",
        jwks=jwks_for(OLD, "old"),
    )


def check(signature: str) -> Callable[[jws.KeySet], None]:
    return lambda keys: jws.verify(signature, BODY, keys)


def forged() -> Callable[[jws.KeySet], None]:
    return check(sign_detached(BODY, NEW, secrets.token_hex(8)))


async def test_a_rotation_right_after_install_verifies_with_one_fetch(store: Store, port: str) -> None:
    installation = await installed(store, port)
    keys = SigningKeys(store, policy())
    await keys.verified(installation, check(sign_detached(BODY, NEW, "new")))
    assert keys.fetches == 1
    stored = await store.installation(installation.id)
    assert stored is not None and [k["kid"] for k in stored.jwks["keys"]] == ["new"]
    await keys.verified(stored, check(sign_detached(BODY, NEW, "new")))
    assert keys.fetches == 1  # known now: no fetch


async def test_a_kid_still_unknown_after_the_fetch_is_unknown(store: Store, port: str) -> None:
    installation = await installed(store, port)
    keys = SigningKeys(store, policy())
    with pytest.raises(jws.UnknownKeyId):
        await keys.verified(installation, check(sign_detached(BODY, NEW, "forged")))
    assert keys.fetches == 1


async def test_a_burst_of_random_kids_shares_one_fetch(store: Store, saleor: MiniSaleor, port: str) -> None:
    installation = await installed(store, port)
    saleor.jwks_delay = 0.05
    keys = SigningKeys(store, policy(), min_interval=1.0, max_waiting=1000)
    calls = [keys.verified(installation, forged()) for _ in range(300)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, jws.UnknownKeyId) for r in results)
    assert keys.fetches <= 2 and saleor.jwks_fetches == keys.fetches


async def test_a_sustained_flood_of_random_kids_is_at_most_one_fetch_per_interval(
    store: Store, saleor: MiniSaleor, port: str
) -> None:
    installation = await installed(store, port)
    keys = SigningKeys(store, policy(), min_interval=0.2, max_waiting=1000)
    started = time.monotonic()

    async def forger() -> int:
        refused = 0
        while time.monotonic() - started < 1.0:
            with pytest.raises(jws.UnknownKeyId):
                await keys.verified(installation, forged())
            refused += 1
        return refused

    refused = sum(await asyncio.gather(*(forger() for _ in range(20))))
    elapsed = time.monotonic() - started
    assert refused >= 20
    assert saleor.jwks_fetches <= 2 + elapsed / 0.2, (saleor.jwks_fetches, elapsed)


async def test_a_forger_cannot_hold_off_a_real_rotation(store: Store, saleor: MiniSaleor, port: str) -> None:
    installation = await installed(store, port)
    keys = SigningKeys(store, policy(), min_interval=0.3)
    saleor.jwks = jwks_for(OLD, "old")
    with pytest.raises(jws.UnknownKeyId):  # the forger's request makes KOM fetch...
        await keys.verified(installation, check(sign_detached(BODY, NEW, "forged")))
    saleor.jwks = jwks_for(NEW, "new")  # ...and Saleor rotates a moment later
    began = time.monotonic()
    await keys.verified(installation, check(sign_detached(BODY, NEW, "new")))
    assert time.monotonic() - began < 0.3 + 1.0 and keys.fetches == 2


async def test_waiting_requests_are_capped(store: Store, saleor: MiniSaleor, port: str) -> None:
    installation = await installed(store, port)
    saleor.jwks_delay = 0.3
    keys = SigningKeys(store, policy(), min_interval=0.1, max_waiting=5)
    calls = [keys.verified(installation, forged()) for _ in range(20)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(isinstance(r, JwksUnavailable) for r in results) == 15
    assert sum(isinstance(r, jws.UnknownKeyId) for r in results) == 5 and keys.fetches == 1


async def test_keys_another_replica_stored_are_used_without_a_fetch(store: Store, port: str) -> None:
    installation = await installed(store, port)
    await store.update_jwks(installation.id, jwks_for(NEW, "new"))
    keys = SigningKeys(store, policy())
    await keys.verified(installation, check(sign_detached(BODY, NEW, "new")))
    assert keys.fetches == 0


async def test_an_unusable_stored_set_is_replaced_by_the_next_fetch(store: Store, port: str) -> None:
    hostile = {"keys": [jwk_for(OLD, "k")] * 2000}  # as stored before the caps existed
    installation = await store.save_installation(
        platform="saleor", api_url=f"http://shop.test:{port}/graphql/", app_id="A", token="t", jwks=hostile
    )
    keys = SigningKeys(store, policy())
    assert keys.current(installation).keys == {}
    await keys.verified(installation, check(sign_detached(BODY, NEW, "new")))
    stored = await store.installation(installation.id)
    assert stored is not None and len(json.dumps(stored.jwks)) < 1000


# -- at the webhook endpoint: 401 for forged kids, 503 only when Saleor cannot be reached ---------


async def webhook(k: Kom, api_url: str, signature: str) -> int:
    headers = {
        "Saleor-Event": "fulfillment_created",
        "Saleor-Api-Url": api_url,
        "Saleor-Signature": signature,
    }
    response = await k.client.post("/api/webhooks/fulfillment-created", content=BODY, headers=headers)
    return response.status_code


async def test_webhook_with_a_forged_kid_is_401_and_a_rotated_one_is_accepted(
    tmp_path: Path, port: str
) -> None:
    async with kom(tmp_path, allowed="127.0.0.0/8", names={"shop.test": ["127.0.0.1"]}) as k:
        installation = await installed(k.store, port)
        install(k.services, SigningKeys(k.store, policy(), min_interval=0.05))
        assert await webhook(k, installation.api_url, sign_detached(BODY, NEW, "forged")) == 401
        # 400, not 401: the signature passed and the (test) body is not a whole payload
        assert await webhook(k, installation.api_url, sign_detached(BODY, NEW, "new")) == 400


async def test_webhook_is_503_when_the_keys_cannot_be_fetched(tmp_path: Path) -> None:
    from tests.e2e.harness import free_port

    async with kom(tmp_path, allowed="127.0.0.0/8", names={"shop.test": ["127.0.0.1"]}) as k:
        installation = await installed(k.store, str(free_port()))  # nothing listens there
        install(k.services, SigningKeys(k.store, policy(), min_interval=0.05))
        assert await webhook(k, installation.api_url, sign_detached(BODY, NEW, "new")) == 503


async def test_webhook_is_401_when_saleor_serves_an_unusable_key_set(
    tmp_path: Path, saleor: MiniSaleor, port: str
) -> None:
    saleor.jwks = {"keys": [jwk_for(NEW, f"k{i}") for i in range(9)]}  # over the cap
    async with kom(tmp_path, allowed="127.0.0.0/8", names={"shop.test": ["127.0.0.1"]}) as k:
        installation = await installed(k.store, port)
        install(k.services, SigningKeys(k.store, policy(), min_interval=0.05))
        assert await webhook(k, installation.api_url, sign_detached(BODY, NEW, "k1")) == 401
        assert await webhook(k, installation.api_url, sign_detached(BODY, OLD, "old")) == 400  # kept
