"""Configuration checked at start: `kom serve|worker|migrate` refuse a bad configuration
with one readable line per problem (exit 2, no traceback, no secret repeated), and
`kom check` prints the effective configuration and the same problems.

The table below is every bad configuration tried; README's "Configuration" documents them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.cli import main
from plugin.preflight import EXIT_CONFIG
from tests.e2e.harness import free_port

SECRET = "preflight-secret-0123456789abcdef"
PASSWORD = "pw-do-not-print"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No KOM_* from the outside; a fresh directory for ./kom.db and ./kom.secret; logging
    as it was (`kom` sets it up on streams that capsys closes after the test)."""
    for name in list(os.environ):
        if name.upper().startswith("KOM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield tmp_path
    root.handlers[:] = handlers
    root.setLevel(level)


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """Run `kom args`; it must exit 2 without starting: the problem lines it printed."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    lines = captured.err.splitlines()
    assert lines[-1].startswith(f"kom {args[0]}: not started (")
    return [line.removeprefix("error: ") for line in lines[:-1]]


def closed_port() -> int:
    return free_port()  # nothing listens there


# (environment, the one line `kom serve`, `kom worker` and `kom migrate` print)
BAD = [
    ({"KOM_DATABASE_URL": "not a url"}, "KOM_DATABASE_URL='not a url': is not a database URL: use sqlite:///./kom.db or postgresql://user:password@host/db"),
    ({"KOM_DATABASE_URL": f"mysql://kom:{PASSWORD}@db/kom"}, "KOM_DATABASE_URL='mysql://kom:***@db/kom': names the database 'mysql', which KOM does not support: use SQLite (sqlite:///./kom.db) or PostgreSQL (postgresql://user:password@host:5432/db)"),
    ({"KOM_DATABASE_URL": "postgresql+psycopg2://kom@db/kom"}, "KOM_DATABASE_URL='postgresql+psycopg2://kom@db/kom': names the driver 'psycopg2', which KOM does not use: write postgresql:// (KOM brings its own: aiosqlite, asyncpg)"),
    ({"KOM_DATABASE_URL": "postgresql://kom@db:fivefourthreetwo/kom"}, "KOM_DATABASE_URL='postgresql://kom@db:fivefourthreetwo/kom': cannot be parsed as a database URL (invalid literal for int() with base 10: 'fivefourthreetwo')"),
    ({"KOM_DATABASE_URL": "postgresql:///kom"}, "KOM_DATABASE_URL='postgresql:///kom': names no PostgreSQL host: postgresql://user:password@host:5432/db"),
    ({"KOM_DATABASE_URL": "sqlite://"}, "KOM_DATABASE_URL='sqlite://': needs a file: an in-memory SQLite database loses everything at exit"),
    ({"KOM_DATABASE_URL": "sqlite:////nonexistent/kom/kom.db"}, "KOM_DATABASE_URL='sqlite:////nonexistent/kom/kom.db': the directory /nonexistent/kom does not exist"),
    ({"KOM_PUBLIC_URL": "kom.example.com"}, "KOM_PUBLIC_URL='kom.example.com': must be the absolute http(s) URL Saleor reaches this KOM at, e.g. https://kom.example.com"),
    ({"KOM_PUBLIC_URL": "ftp://kom.example.com"}, "KOM_PUBLIC_URL='ftp://kom.example.com': must be the absolute http(s) URL"),
    ({"KOM_PUBLIC_URL": "https://kom.example.com/?shop=1"}, "KOM_PUBLIC_URL='https://kom.example.com/?shop=1': must be the absolute http(s) URL"),
    ({"KOM_ALLOWED_SALEOR_URLS": "https://[shop"}, "KOM_ALLOWED_SALEOR_URLS='https://[shop': is not a valid regular expression (unterminated character set at position 8)"),
    ({"KOM_LOG_LEVEL": "loud"}, "KOM_LOG_LEVEL='loud': must be one of DEBUG, INFO, WARNING, ERROR (in any case)"),
    ({"KOM_LOG_JSON": "maybe"}, "KOM_LOG_JSON='maybe': should be a valid boolean, unable to interpret input"),
    ({"KOM_PROVIDER_TIMEOUT_SECONDS": "fifteen"}, "KOM_PROVIDER_TIMEOUT_SECONDS='fifteen': should be a valid number, unable to parse string as a number"),
    ({"KOM_PROVIDER_TIMEOUT_SECONDS": "0"}, "KOM_PROVIDER_TIMEOUT_SECONDS='0': should be greater than 0"),
    ({"KOM_PROVIDER_TIMEOUT_SECONDS": "600"}, "KOM_PROVIDER_TIMEOUT_SECONDS='600': should be less than or equal to 120"),
    ({"KOM_PROVIDER_MAX_ATTEMPTS": "2.5"}, "KOM_PROVIDER_MAX_ATTEMPTS='2.5': should be a valid integer, unable to parse string as an integer"),
    ({"KOM_PROVIDER_MAX_ATTEMPTS": "0"}, "KOM_PROVIDER_MAX_ATTEMPTS='0': should be greater than or equal to 1"),
    ({"KOM_PROVIDER_MAX_ATTEMPTS": "99"}, "KOM_PROVIDER_MAX_ATTEMPTS='99': should be less than or equal to 10"),
    ({"KOM_SECRET_KEY": "short"}, "KOM_SECRET_KEY: must be at least 16 characters (use 32+ random ones)"),
    ({"KOM_SECRET_KEY": f"{SECRET},old"}, "KOM_SECRET_KEY: must be at least 16 characters (use 32+ random ones)"),
    ({"KOM_ENVIRONMENT": "production"}, "KOM_SECRET_KEY: not set; it is required when KOM_ENVIRONMENT is not development (here 'production'). Generate one with python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"),
    ({"KOM_ENVIRONMENT": " "}, "KOM_ENVIRONMENT=' ': must name this deployment, e.g. production or staging"),
]  # fmt: skip


@pytest.mark.parametrize("command", [["serve"], ["worker", "--once"], ["migrate"]])
@pytest.mark.parametrize(("env", "line"), BAD, ids=[line.split(":")[0] for _, line in BAD])
def test_a_bad_setting_is_one_line_and_nothing_starts(
    command: list[str],
    env: dict[str, str],
    line: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean: Path,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if command[0] == "migrate" and line.startswith("KOM_SECRET_KEY: not set"):
        assert main(command) == 0  # the schema needs no key: a migration Job may run without it
        assert "migrated from an empty database" in capsys.readouterr().out
        return
    (problem,) = refused(capsys, *command)
    assert problem.startswith(line), problem
    assert PASSWORD not in problem and SECRET not in problem and "short" not in problem.split(":")[0]
    assert not (clean / "kom.db").exists()


def test_every_problem_at_once_one_line_each(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for env, _ in BAD[7:20]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
    problems = refused(capsys, "serve")
    named = [problem.split("=")[0].split(":")[0] for problem in problems]
    assert named == [
        "KOM_SECRET_KEY",
        "KOM_PUBLIC_URL",
        "KOM_ALLOWED_SALEOR_URLS",
        "KOM_LOG_LEVEL",
        "KOM_LOG_JSON",
        "KOM_PROVIDER_TIMEOUT_SECONDS",
        "KOM_PROVIDER_MAX_ATTEMPTS",
    ]


def test_an_unreachable_postgresql_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv("KOM_DATABASE_URL", f"postgresql://kom:{PASSWORD}@127.0.0.1:{port}/kom")
    monkeypatch.setenv("KOM_SECRET_KEY", SECRET)
    for command in (["serve"], ["worker", "--once"], ["migrate"], ["installations"]):
        (problem,) = refused(capsys, *command)
        assert problem.startswith(
            f"KOM_DATABASE_URL='postgresql://kom:***@127.0.0.1:{port}/kom': cannot connect ("
        )
        assert "Connect call failed" in problem or "refused" in problem.lower(), problem
        assert PASSWORD not in problem


def test_postgres_scheme_is_postgresql(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Heroku-style postgres:// URLs work as they are: migrate, check, worker."""
    import asyncio

    from tests.store.postgres import fresh_database

    async def run() -> None:
        async with fresh_database("postgresql", tmp_path) as url:
            assert url.startswith("postgresql://")
            monkeypatch.setenv("KOM_DATABASE_URL", "postgres://" + url.removeprefix("postgresql://"))
            monkeypatch.setenv("KOM_SECRET_KEY", SECRET)
            assert await asyncio.to_thread(main, ["migrate"]) == 0
            assert await asyncio.to_thread(main, ["check"]) == 0
            assert await asyncio.to_thread(main, ["worker", "--once"]) == 0

    asyncio.run(run())
    out = capsys.readouterr().out
    assert "migrated from an empty database" in out and "processed 0 orders" in out
    assert "KOM_DATABASE_URL=postgresql://" in out and "reachable, schema at revision" in out


def test_a_file_that_is_not_a_database(capsys: pytest.CaptureFixture[str], clean: Path) -> None:
    (clean / "kom.db").write_text("these are not the tables you are looking for\n" * 100)
    (problem,) = refused(capsys, "worker", "--once")
    assert (
        problem
        == "KOM_DATABASE_URL='sqlite:///./kom.db': kom.db is not a usable SQLite database (file is not a database)"
    )


def test_an_unusable_development_key_file(capsys: pytest.CaptureFixture[str], clean: Path) -> None:
    (clean / "kom.secret").write_text("abc\n")
    (problem,) = refused(capsys, "serve")
    assert problem == (
        f"KOM_SECRET_KEY: not set, and {clean / 'kom.secret'} holds no usable key (fewer than 16 "
        "characters); restore it from a backup or set KOM_SECRET_KEY"
    )
    assert (clean / "kom.secret").read_text() == "abc\n"  # never overwritten


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_busy_ports(listening: int, capsys: pytest.CaptureFixture[str]) -> None:
    (problem,) = refused(capsys, "serve", "--port", str(listening))
    assert problem == f"--port {listening}: already in use on 127.0.0.1 (another process listens there)"
    (problem,) = refused(capsys, "worker", "--metrics-port", str(listening))
    assert problem == f"--metrics-port {listening}: already in use on 0.0.0.0 (another process listens there)"


def test_a_host_that_is_not_here(capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails, nothing is sent.
    (problem,) = refused(capsys, "serve", "--host", "192.0.2.1", "--port", str(free_port()))
    assert problem == "--host 192.0.2.1: not an address of this machine"


def test_values_that_mean_the_same_are_accepted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOM_LOG_LEVEL", "debug")
    monkeypatch.setenv("KOM_PUBLIC_URL", "https://kom.example.com/")
    monkeypatch.setenv("KOM_SECRET_KEY", "")  # an empty line in an env file: not set
    monkeypatch.setenv("KOM_LOG_JSON", "yes")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "KOM_LOG_LEVEL=DEBUG" in out and "KOM_PUBLIC_URL=https://kom.example.com " in out
    assert "KOM_LOG_JSON=true" in out and "manifest: https://kom.example.com/api/manifest" in out


# -- kom check ----------------------------------------------------------------------------


def test_check_prints_the_configuration_with_secrets_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clean: Path
) -> None:
    monkeypatch.setenv("KOM_SECRET_KEY", SECRET)
    monkeypatch.setenv("KOM_SENTRY_DSN", f"https://{PASSWORD}@o1.ingest.sentry.io/1")
    monkeypatch.setenv("KOM_ENVIRONMENT", "staging")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and PASSWORD not in out
    assert "KOM_SECRET_KEY=**********" in out and "KOM_SENTRY_DSN=**********" in out
    lines = {line.split("=")[0].strip(): line for line in out.splitlines() if line.startswith("  KOM_")}
    assert lines["KOM_ENVIRONMENT"].endswith("(environment)") and lines["KOM_LOG_LEVEL"].endswith("(default)")
    assert "database: sqlite:///./kom.db: not created yet" in out
    assert out.rstrip().endswith("no problems found")
    assert not (clean / "kom.db").exists() and not (clean / "kom.secret").exists()  # changes nothing


def test_check_lists_every_problem_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOM_DATABASE_URL", f"postgresql://kom:{PASSWORD}@127.0.0.1:{closed_port()}/kom")
    monkeypatch.setenv("KOM_LOG_LEVEL", "chatty")
    monkeypatch.setenv("KOM_SECRET_KEY", "short-secret")
    assert main(["check"]) == EXIT_CONFIG
    out = capsys.readouterr().out
    assert "KOM_LOG_LEVEL=(invalid)" in out and "KOM_SECRET_KEY=(invalid)" in out
    assert "2 problems:" in out and PASSWORD not in out and "short-secret" not in out
    assert "  error: KOM_LOG_LEVEL='chatty': must be one of" in out
    # The database is tried once the settings themselves are right.
    monkeypatch.delenv("KOM_LOG_LEVEL")
    monkeypatch.delenv("KOM_SECRET_KEY")
    assert main(["check"]) == EXIT_CONFIG
    assert "error: KOM_DATABASE_URL='postgresql://kom:***@" in capsys.readouterr().out


def test_check_says_when_postgresql_needs_migrating(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio

    from tests.store.postgres import fresh_database

    async def run() -> int:
        async with fresh_database("postgresql", tmp_path) as url:
            monkeypatch.setenv("KOM_DATABASE_URL", url)
            return await asyncio.to_thread(main, ["check"])

    assert asyncio.run(run()) == EXIT_CONFIG
    out = capsys.readouterr().out
    assert "error: KOM_DATABASE_URL: the database has no KOM schema" in out and "run `kom migrate`" in out


def test_settings_still_prints_the_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOM_DATABASE_URL", f"postgresql://kom:{PASSWORD}@db/kom")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "KOM_DATABASE_URL=postgresql://kom:***@db/kom" in out and PASSWORD not in out


def test_a_missing_key_is_told_beside_other_problems_and_nothing_is_generated(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clean: Path
) -> None:
    monkeypatch.setenv("KOM_LOG_LEVEL", "x")
    monkeypatch.setenv("KOM_ENVIRONMENT", "production")
    problems = refused(capsys, "worker")
    assert [p.split(":")[0].split("=")[0] for p in problems] == ["KOM_LOG_LEVEL", "KOM_SECRET_KEY"]
    monkeypatch.delenv("KOM_ENVIRONMENT")
    assert len(refused(capsys, "worker")) == 1
    assert not (clean / "kom.secret").exists()  # the development key waits for a good configuration
