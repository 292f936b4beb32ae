"""`kom migrate`, and `kom serve`/`kom worker` refusing an out-of-date PostgreSQL schema while
the zero-setup SQLite default migrates by itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.cli import build_parser, main
from plugin.runtime import check_schema, open_store
from plugin.settings import Settings, get_settings
from plugin.store import schema
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from tests.store.postgres import fresh_database

KEY = "test-secret-key-0123456789abcdef"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[str]:
    monkeypatch.setenv("KOM_DATABASE_URL", database_url)
    monkeypatch.setenv("KOM_SECRET_KEY", KEY)
    get_settings.cache_clear()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # `kom worker` sets logging up
    yield database_url
    root.handlers[:] = handlers
    root.setLevel(level)
    get_settings.cache_clear()


def test_migrate_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["migrate", "--help"])
    assert "--check" in capsys.readouterr().out


async def test_kom_migrate_then_check(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(main, ["migrate", "--check"]) == 1
    assert "needs migrating" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    assert f"to revision {schema.head()}" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["migrate", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


async def test_servers_refuse_an_old_postgresql_schema_and_migrate_sqlite(env: str) -> None:
    settings = Settings(database_url=env, secret_key=KEY)  # type: ignore[arg-type]
    old = await Store.open(env, SecretBox(KEY), create=False)
    await schema.upgrade(old.engine, "0001")
    await old.close()
    if env.startswith("sqlite"):
        await check_schema(settings)  # migrates, no extra step
        store = await open_store(settings)
        assert (await store.schema_status()).up_to_date
        await store.close()
        return
    with pytest.raises(SystemExit, match=r"revision 0001.*run `kom migrate`"):
        await check_schema(settings)
    with pytest.raises(schema.SchemaOutOfDate):
        await open_store(settings)
    with pytest.raises(SystemExit, match="kom migrate"):
        await asyncio.to_thread(main, ["worker", "--once"])
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    await check_schema(settings)


async def test_the_web_app_refuses_to_start_on_an_old_postgresql_schema(tmp_path: Path) -> None:
    from plugin.web.app import create_app

    async with fresh_database("postgresql", tmp_path) as url:
        app = create_app(Settings(database_url=url, secret_key=KEY), run_worker=False)  # type: ignore[arg-type]
        with pytest.raises(schema.SchemaOutOfDate, match=r"no KOM schema.*kom migrate"):
            async with app.router.lifespan_context(app):
                pass
