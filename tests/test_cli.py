"""The `kom` command line: help everywhere, the demo end to end, configure."""

from __future__ import annotations

import pytest

from plugin.cli import build_parser, main


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["sandbox"], ["serve"], ["worker"], ["configure"], ["settings"], ["reconcile"]]
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: kom" in capsys.readouterr().out


def test_demo_books_every_refund_on_the_invoice_that_shipped_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert (
        "SNEAKERS-42/2 ×1" in out and "Every refund was booked on the invoice that shipped its goods." in out
    )
    assert "Refund split over 2 invoices" in out or "Saleor part skipped" in out


def test_settings_masks_secrets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOM_SECRET_KEY", "do-not-print-me-0123456789")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "do-not-print-me" not in out and "KOM_SECRET_KEY=**********" in out


async def test_configure_saves_encrypted_settings_for_an_installation(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from plugin.settings import get_settings
    from plugin.store.secrets import SecretBox
    from plugin.store.store import Store

    url = f"sqlite:///{tmp_path}/kom.db"
    key = "cli-test-secret-0123456789abcdef"
    monkeypatch.setenv("KOM_DATABASE_URL", url)
    monkeypatch.setenv("KOM_SECRET_KEY", key)
    get_settings.cache_clear()
    store = await Store.open(url, SecretBox(key))
    await store.save_installation(
        platform="saleor", api_url="https://shop.example.com/graphql/", app_id="QXBwOjE=", token="t", jwks={}
    )
    args = ["configure", "--provider", "kustom", "--environment", "playground", "--region", "eu"]
    args += ["--api-key", "kco_test_api_SECRET", "--channel", "se"]
    loop_result = await asyncio.to_thread(
        main, [*args, "--saleor-api-url", "https://shop.example.com/graphql/"]
    )
    assert loop_result == 0
    saved = await store.settings_for(1, "se")
    assert saved is not None and saved.provider == "kustom" and saved.api_key == "kco_test_api_SECRET"
    assert "kco_test_api_SECRET" not in capsys.readouterr().out
    unknown = await asyncio.to_thread(main, [*args, "--saleor-api-url", "https://nope.example.com/graphql/"])
    assert unknown == 2 and "no installation" in capsys.readouterr().out
    kustom_na = [a if a != "eu" else "na" for a in args]
    assert (
        await asyncio.to_thread(main, [*kustom_na, "--saleor-api-url", "https://shop.example.com/graphql/"])
        == 2
    )
    await store.close()
    get_settings.cache_clear()


def test_reconcile_since_takes_durations_and_dates() -> None:
    from datetime import UTC, datetime

    from plugin.reconcile_report import parse_since

    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert parse_since("30d", now) == datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
    assert parse_since("12h", now) == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30:00+01:00") == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reconcile", "--since", "last week"])
