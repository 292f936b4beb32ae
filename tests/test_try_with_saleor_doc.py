"""docs/try-with-saleor.md stays runnable: every `kom` command in it parses, the settings it
exports pass KOM's checks, and its GraphQL is valid against Saleor's schema."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from graphql import parse, validate

from plugin.cli import build_parser
from plugin.settings import Settings
from tests.fakes.saleor.schema import require_schema

DOC = (Path(__file__).resolve().parents[1] / "docs" / "try-with-saleor.md").read_text()


def test_every_kom_command_parses() -> None:
    joined = DOC.replace("\\\n", " ")
    commands = re.findall(r"\.venv/bin/kom ([a-z][^\n|&`]*)", joined)
    assert len(commands) >= 5
    for command in commands:
        build_parser().parse_args(shlex.split(command))


def test_the_exported_settings_are_valid() -> None:
    exported = dict(re.findall(r"^export (KOM_[A-Z_]+)=(\S+)", DOC, flags=re.M))
    assert {"KOM_PUBLIC_URL", "KOM_ALLOWED_SALEOR_URLS"} <= exported.keys()
    values = {name.removeprefix("KOM_").lower(): shlex.split(value)[0] for name, value in exported.items()}
    settings = Settings(**values)
    assert re.fullmatch(settings.allowed_saleor_urls, "http://localhost:8000/graphql/")
    assert settings.public_url == "http://host.docker.internal:8010"


def test_the_graphql_is_valid_for_saleor() -> None:
    schema = require_schema()
    (mutation,) = re.findall(r'mutation = """(.*?)"""', DOC, flags=re.S)
    assert validate(schema, parse(mutation)) == []
