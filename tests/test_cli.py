"""The `kom` command line: help everywhere, options before or after the command, the demo
end to end, quiet in a pipe, colour only on a terminal. (Configuration checks:
test_preflight.py; configure and installations: test_configure.py; fresh starts:
test_first_run.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.cli import build_parser, main, use_color

COMMANDS = [
    "demo",
    "sandbox",
    "serve",
    "worker",
    "migrate",
    "configure",
    "installations",
    "check",
    "reconcile",
    "settings",
]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: kom" in capsys.readouterr().out


def test_kom_alone_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kom") and all(command in out for command in COMMANDS)


REQUIRED = {
    "configure": [
        *("--saleor-api-url", "https://shop.example.com/graphql/", "--provider", "klarna"),
        *("--environment", "playground"),
    ]
}


@pytest.mark.parametrize("command", COMMANDS)
def test_log_level_goes_before_or_after_the_command_in_any_case(command: str) -> None:
    parser = build_parser()
    given = [command, *REQUIRED.get(command, [])]
    assert parser.parse_args([*given, "--log-level", "debug"]).log_level == "DEBUG"
    assert parser.parse_args(["--log-level", "Warn", *given]).log_level == "WARNING"
    assert parser.parse_args(["--log-level", "error", *given, "--log-level", "info"]).log_level == "INFO"
    assert parser.parse_args(given).log_level is None  # then KOM_LOG_LEVEL applies


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--log-level", "loud"], "argument --log-level: 'loud' is not a log level"),
        (["serve", "--port", "70000"], "argument --port: 70000 is out of range: a port is 1-65535"),
        (["serve", "--port", "0"], "argument --port: 0 is out of range"),
        (["serve", "--port", "http"], "argument --port: 'http' is not a port number (1-65535)"),
        (["worker", "--metrics-port", "-1"], "argument --metrics-port: -1 is out of range"),
        (["sandbox", "--port", "99999"], "argument --port: 99999 is out of range"),
    ],
)
def test_bad_options_are_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", Terminal(True))
    assert use_color() and not use_color(no_color=True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color()
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys, "stdout", Terminal(False))
    assert not use_color()


def test_demo_in_a_pipe_is_plain_and_ends_quietly_when_the_reader_leaves(tmp_path: Path) -> None:
    """`kom demo | head -3`: no escape codes in a pipe, no BrokenPipeError when head is done."""
    env = {name: value for name, value in os.environ.items() if name != "NO_COLOR"}
    demo = subprocess.Popen(
        [str(Path(sys.executable).with_name("kom")), "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert demo.stdout is not None and demo.stderr is not None
    head = [demo.stdout.readline() for _ in range(3)]
    demo.stdout.close()  # the reader leaves, as head does
    err = demo.stderr.read().decode()
    demo.stderr.close()
    demo.wait(timeout=120)
    assert b"\033[" not in b"".join(head) and head[0].startswith(b"Order Management sandbox listening")
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert demo.returncode == 141  # what a shell reports for a writer whose reader left


def test_demo_books_every_refund_on_the_invoice_that_shipped_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert (
        "SNEAKERS-42/2 ×1" in out and "Every refund was booked on the invoice that shipped its goods." in out
    )
    assert "split over 2 invoices" in out or "Saleor part skipped" in out


def test_settings_masks_secrets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOM_SECRET_KEY", "do-not-print-me-0123456789")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "do-not-print-me" not in out and "KOM_SECRET_KEY=**********" in out


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
