"""Dashboard tokens (issue 11, item 6): the claims Saleor sets, checked.

Saleor mints the token in ``saleor/core/jwt.py`` (``create_access_token_for_app`` ->
``_create_access_token_for_third_party_actions`` -> ``jwt_user_payload``): ``iss`` is
``build_absolute_uri(reverse("api"))`` (the ``/graphql/`` URL, which is also the
``Saleor-Api-Url`` it installs apps with), ``aud`` the app's manifest ``audience`` when it
declares one, ``owner`` "saleor", ``type`` "thirdparty", ``is_staff``, and ``exp`` =
``iat`` + ``JWT_TTL_APP_ACCESS`` (five minutes by default).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.saleor.manifest import audience
from tests.dashboard.helpers import headers
from tests.e2e.harness import world
from tests.saleor.signing import jwks_for, rsa_key
from tests.security.helpers import PUBLIC_URL, Kom, dashboard_token, kom

API_URL = "https://shop.example.com/graphql/"
APP_ID = "QXBwOjE="


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kom]:
    async with kom(tmp_path) as built:
        await built.store.save_installation(
            platform="saleor", api_url=API_URL, app_id=APP_ID, token="t", jwks=jwks_for(rsa_key())
        )
        yield built


async def me(k: Kom, **changes: Any) -> tuple[int, str]:
    token = dashboard_token(API_URL, APP_ID, now=int(time.time()), **changes)
    sent = {"Saleor-Api-Url": API_URL, "Authorization-Bearer": token}
    response = await k.client.get("/api/dashboard/me", headers=sent)
    return response.status_code, response.json().get("error", "")


def test_the_manifest_declares_the_audience_kom_checks() -> None:
    from adapters.saleor.manifest import build_manifest

    assert build_manifest(PUBLIC_URL + "/", "1")["audience"] == audience(PUBLIC_URL) == PUBLIC_URL


async def test_a_token_as_saleor_mints_it_is_accepted(k: Kom) -> None:
    assert await me(k) == (200, "")
    assert await me(k, aud=None) == (200, "")  # installed before KOM's manifest declared an audience
    assert await me(k, aud=["someone", audience(PUBLIC_URL)]) == (200, "")
    now = int(time.time())
    assert await me(k, iat=now, exp=now + 15 * 60) == (200, "")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"iss": "https://other-shop.example.com/graphql/"}, "issued by another Saleor"),
        ({"iss": None}, "issued by another Saleor"),
        ({"aud": "https://other-app.example.com"}, "another audience"),
        ({"aud": ["https://other-app.example.com"]}, "another audience"),
        ({"is_staff": False}, "not belong to a staff user"),
        ({"is_staff": None}, "not belong to a staff user"),
        ({"owner": "plugin"}, "not an app token"),
        ({"iat": None}, "no numeric iat"),
        ({"exp": int(time.time()) + 86400}, "lives longer than 900 s"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3900}, "issued in the future"),
    ],
)
async def test_tokens_saleor_would_not_have_minted_for_this_installation_are_401(
    k: Kom, changes: dict[str, Any], words: str
) -> None:
    status, error = await me(k, **changes)
    assert status == 401 and words in error, error


async def test_tokens_of_the_fake_saleor_carry_kom_audience_and_other_ones_are_refused(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await w.install()
        assert w.app is not None
        url = f"{w.kom_url}/api/dashboard/me"

        async def status(**options: Any) -> int:
            minted = w.saleor.mint_dashboard_token(w.app, user_permissions=("MANAGE_APPS",), **options)  # type: ignore[arg-type]
            return (await w.http.get(url, headers=headers(w, minted))).status_code

        assert await status() == 200
        assert await status(audience="https://another-app.example.com") == 401
        assert await status(is_staff=False) == 401
        assert await status(expires_in=24 * 3600) == 401
