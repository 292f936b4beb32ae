"""`kom configure` checks like the dashboard's Settings page (the same rules, the same
sentences), takes the key from stdin or KOM_API_KEY and never from argv, runs the connection
test with --test against a real local Order Management sandbox, and `kom installations`
lists what KOM knows."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from adapters.klarna.sandbox import DEMO_API_KEY, SandboxState
from adapters.klarna.sandbox import create_app as create_sandbox
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.cli import main
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

SECRET = "configure-secret-0123456789abcdef"
SHOP = "https://shop.example.com/graphql/"
KUSTOM_KEY = "kco_test_api_a3VzdG9tLWtleS0xMjM0NTY"


@dataclass
class Setup:
    store: Store
    sandbox: str
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    async def kom(self, *args: str, stdin: str | None = None, key: str | None = None) -> tuple[int, str, str]:
        """`kom args` in-process; (exit code, stdout, stderr)."""
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        if key is None:
            self.monkeypatch.delenv("KOM_API_KEY", raising=False)
        else:
            self.monkeypatch.setenv("KOM_API_KEY", key)
        code = await asyncio.to_thread(main, list(args))
        captured = self.capsys.readouterr()
        assert "Traceback" not in captured.err
        return code, captured.out, captured.err


@pytest.fixture
def sandbox() -> Iterator[str]:
    with serve_in_thread(create_sandbox(SandboxState())) as url:
        yield url


@pytest_asyncio.fixture
async def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sandbox: str
) -> AsyncIterator[Setup]:
    for name in list(os.environ):
        if name.upper().startswith("KOM_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path}/kom.db"
    monkeypatch.setenv("KOM_DATABASE_URL", url)
    monkeypatch.setenv("KOM_SECRET_KEY", SECRET)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    store = await Store.open(url, SecretBox(SECRET))
    await store.save_installation(platform="saleor", api_url=SHOP, app_id="QXBwOjE=", token="t", jwks={})
    yield Setup(store, sandbox, capsys, monkeypatch)
    await store.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def configure(*extra: str, provider: str = "klarna", environment: str = "playground") -> list[str]:
    return [
        "configure",
        "--saleor-api-url",
        SHOP,
        "--provider",
        provider,
        "--environment",
        environment,
        *extra,
    ]


async def test_the_key_comes_from_stdin_or_the_environment_never_argv(setup: Setup) -> None:
    code, out, _ = await setup.kom(*configure("--region", "eu", "--api-key-stdin"), stdin=f"{DEMO_API_KEY}\n")
    assert (
        code == 0 and "saved: klarna playground (https://api.playground.klarna.com) for all channels" in out
    )
    assert DEMO_API_KEY not in out and f"stored encrypted: …{DEMO_API_KEY[-4:]}" in out
    saved = await setup.store.settings_for(1, "")
    assert saved is not None and saved.api_key == DEMO_API_KEY and saved.region == "eu"

    code, out, _ = await setup.kom(*configure(provider="kustom", environment="playground"), key=KUSTOM_KEY)
    assert code == 0 and "saved: kustom playground (https://api.playground.kustom.co)" in out
    saved = await setup.store.settings_for(1, "")
    assert saved is not None and saved.api_key == KUSTOM_KEY and saved.region == "eu"  # Kustom: no region

    code, _, err = await setup.kom(*configure("--region", "eu", "--api-key", DEMO_API_KEY))
    assert code == 2 and err.startswith("error: --api-key: a key on the command line stays in shell history")
    assert DEMO_API_KEY not in err


async def test_a_channel_keeps_its_saved_key_and_policies(setup: Setup) -> None:
    args = configure("--region", "eu", "--channel", "se", "--shipping-fee", "last_parcel", "--api-key-stdin")
    assert (await setup.kom(*args, stdin=DEMO_API_KEY))[0] == 0
    code, out, _ = await setup.kom(
        *configure("--region", "eu", "--channel", "se", "--capture-mode", "manual")
    )
    assert code == 0 and "for channel se of" in out and "(the saved one, unchanged)" in out
    saved = await setup.store.settings_for(1, "se")
    assert saved is not None and (saved.region, saved.shipping_fee, saved.api_key) == (
        "eu",
        "last_parcel",
        DEMO_API_KEY,
    )
    # Another endpoint needs the key typed again: a saved key only goes where it was saved for.
    code, _, err = await setup.kom(*configure("--region", "na", "--channel", "se"))
    assert code == 2 and err.startswith("error: API key:")
    assert await setup.store.channels(1) == ["se"]  # the default was never set


async def test_extend_authorization_is_saved_and_kept_until_changed(setup: Setup) -> None:
    async def extend() -> bool:
        saved = await setup.store.settings_for(1, "")
        assert saved is not None
        return saved.extend_authorization

    assert (await setup.kom(*configure("--region", "eu"), key=DEMO_API_KEY))[0] == 0
    assert await extend() is False  # new settings: off
    assert (await setup.kom(*configure("--region", "eu", "--extend-authorization")))[0] == 0
    assert await extend() is True
    assert (await setup.kom(*configure("--region", "eu", "--shipping-fee", "last_parcel")))[0] == 0
    assert await extend() is True  # not given: as saved
    assert (await setup.kom(*configure("--region", "eu", "--no-extend-authorization")))[0] == 0
    assert await extend() is False


# (options, key, the line printed): the dashboard's rules, in the command line's words.
REFUSED = [
    (configure("--region", "eu"), None, "error: API key: none given and none saved for this channel: pass it on stdin with --api-key-stdin, or in KOM_API_KEY"),
    (configure(), DEMO_API_KEY, "error: --region: Klarna serves each merchant from one region: choose eu, na or oc"),
    (configure("--region", "na", provider="kustom"), KUSTOM_KEY, "error: --region: kustom has no NA region; it serves all merchants from https://api.playground.kustom.co."),
    (configure("--region", "eu"), KUSTOM_KEY, "error: API key: This is a Kustom API key; choose Kustom as the provider."),
    (configure("--region", "eu", environment="production"), DEMO_API_KEY, "error: API key: This is a test key: it only works in the playground environment."),
    (configure("--region", "eu"), "klarna test api key", "error: API key: The API key must be printable ASCII without spaces."),
    (configure("--region", "eu", "--base-url", "http://om.example.com", environment="production"), "klarna_live_api_a2V5", "error: --base-url: Production credentials are only sent over https://."),
    (configure("--region", "eu", "--base-url", "om.example.com"), DEMO_API_KEY, "error: --base-url: The API base URL must be an absolute http:// or https:// URL."),
    (configure("--region", "eu", "--username", "a:b"), "password-0123", "error: --username: The username must be printable, without a colon, at most 255 characters."),
    (configure("--region", "eu", "--channel", "se/dk"), DEMO_API_KEY, "error: --channel 'se/dk': a Saleor channel slug has letters, digits, - and _ only"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "key", "line"), REFUSED, ids=[line[7:40] for *_, line in REFUSED])
async def test_refused_like_the_dashboard(setup: Setup, args: list[str], key: str | None, line: str) -> None:
    code, out, err = await setup.kom(*args, key=key)
    assert code == 2 and out == ""
    assert err.splitlines() == [line]
    assert await setup.store.channels(1) == []  # nothing saved


async def test_an_unknown_saleor_url_and_the_trailing_slash(setup: Setup) -> None:
    args = configure("--region", "eu")
    args[args.index(SHOP)] = SHOP.rstrip("/")
    code, _, err = await setup.kom(*args, key=DEMO_API_KEY)
    assert code == 2 and err.strip() == (
        f"error: no installation for {SHOP.rstrip('/')}; KOM knows {SHOP}, with the trailing slash: use that"
    )
    args[args.index(SHOP.rstrip("/"))] = "https://other.example.com/graphql/"
    code, _, err = await setup.kom(*args, key=DEMO_API_KEY)
    assert code == 2 and "install KOM from that Saleor dashboard first (`kom installations`" in err


async def test_test_runs_the_connection_test_and_saves_only_when_it_passes(setup: Setup) -> None:
    args = configure("--region", "eu", "--base-url", setup.sandbox, "--test")
    code, out, err = await setup.kom(*args, key="klarna_test_api_d3JvbmcK")
    assert code == 1 and "connection test: Klarna answered 401 Unauthorized" in out
    assert "correlation id: " in out and "not saved: the connection test failed" in err
    assert await setup.store.channels(1) == []
    code, out, _ = await setup.kom(*args, key=DEMO_API_KEY)
    assert code == 0 and f"connection test: Connected to Klarna playground at {setup.sandbox}" in out
    assert f"saved: klarna playground ({setup.sandbox})" in out
    assert await setup.store.channels(1) == [""]


async def test_installations_lists_each_with_its_channels(setup: Setup) -> None:
    await setup.store.save_installation(
        platform="saleor", api_url="https://two.example.com/graphql/", app_id="QXBwOjI=", token="t", jwks={}
    )
    assert (await setup.kom(*configure("--region", "na"), key=DEMO_API_KEY))[0] == 0
    assert (await setup.kom(*configure("--channel", "se", provider="kustom"), key=KUSTOM_KEY))[0] == 0
    code, out, _ = await setup.kom("installations")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "platform", "API", "URL", "settings"]
    assert lines[2].split(None, 3) == [
        "1",
        "saleor",
        SHOP,
        "all channels: klarna playground na; channel se: kustom playground eu",
    ]
    assert lines[3].split() == ["2", "saleor", "https://two.example.com/graphql/", "not", "configured"]
    assert DEMO_API_KEY not in out and KUSTOM_KEY not in out


async def test_another_secret_key_is_one_line(setup: Setup) -> None:
    setup.monkeypatch.setenv("KOM_SECRET_KEY", "not-the-key-it-was-written-with")
    code, _, err = await setup.kom("installations")
    assert code == 2 and err.strip() == (
        "error: no KOM_SECRET_KEY decrypts this secret (was the key changed?): "
        "KOM_SECRET_KEY must be the key the database was written with"
    )
