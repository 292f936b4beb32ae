"""Configuration checked at start: every problem as one readable line, before anything runs.

`kom serve|worker|migrate|configure|installations` call ``settings_or_exit``; `kom check`
calls the same pieces and prints what it found. A problem is a sentence that names the
setting or option, the value (secrets never) and what would be right, e.g.
``KOM_LOG_LEVEL='loud': must be one of DEBUG, INFO, WARNING, ERROR (in any case)``.

What is checked:

* every ``KOM_*`` setting (``plugin/settings.py`` validates and normalises them);
* the secret key: set, or in development generated once into ``./kom.secret``;
* the database: SQLite's file or directory usable, PostgreSQL answering (short timeout);
* ports a command is about to listen on: free, and allowed to this user.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from plugin.settings import Settings, masked_database_url

log = logging.getLogger("kom")

EXIT_CONFIG = 2  # like a usage error: nothing was started, nothing was changed
DEV_SECRET_FILE = Path("kom.secret")
DATABASE_TIMEOUT = 8.0  # seconds to wait for PostgreSQL to answer at start
GENERATE_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def env_name(field_name: str) -> str:
    return f"KOM_{field_name.upper()}"


@dataclass(frozen=True)
class Listen:
    """A port a command will listen on: ``option`` names it in messages (``--port``)."""

    option: str
    host: str
    port: int


@dataclass
class Configuration:
    """The settings as read, printable values and where each came from, and the problems."""

    settings: Settings | None  # None while a setting is unusable
    partial: Settings | None = None  # the usable settings, the unusable ones at their defaults
    shown: dict[str, str] = field(default_factory=dict)  # KOM_NAME -> value, secrets masked
    origin: dict[str, str] = field(default_factory=dict)  # KOM_NAME -> environment | default | file
    problems: list[str] = field(default_factory=list)


def _given(environ: Mapping[str, str]) -> set[str]:
    # pydantic-settings matches names case-insensitively; so does this.
    return {name.upper() for name in environ}


def is_set(field_name: str) -> bool:
    """Whether the environment sets this setting (else its default applies)."""
    return env_name(field_name) in _given(os.environ)


def _display(name: str, value: Any) -> str:
    if value is None:
        return "(not set)" if name == "secret_key" else ""
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if name == "database_url" and isinstance(value, str):
        return masked_database_url(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _problem(error: Any) -> tuple[str, str]:
    """(field, one line) for one pydantic error; secret values are never repeated."""
    name = str(error["loc"][0]) if error.get("loc") else "?"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message.replace("Input should be", "should be", 1)
    secret = Settings.model_fields.get(name) is not None and "Secret" in str(
        Settings.model_fields[name].annotation
    )
    given = error.get("input")
    if secret or not isinstance(given, str | int | float):
        return name, f"{env_name(name)}: {message}"
    if name == "database_url":
        return name, f"{env_name(name)}={masked_database_url(str(given))!r}: {message}"
    return name, f"{env_name(name)}={given!r}: {message}"


def read(environ: Mapping[str, str] | None = None) -> Configuration:
    """Every KOM_* setting from the process environment, checked (no I/O besides reading it)."""
    given = _given(os.environ if environ is None else environ)
    bad: dict[str, str] = {}
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name, line = _problem(error)
            bad.setdefault(name, line)
        # The other settings, valid ones, are still worth showing: read them again with the
        # broken ones at their defaults.
        settings = Settings(**{name: Settings.model_fields[name].default for name in bad})
    except SettingsError as exc:
        return Configuration(None, problems=[f"the KOM_* environment cannot be read: {exc}"])
    conf = Configuration(None if bad else settings, settings, problems=list(bad.values()))
    for name in Settings.model_fields:
        key = env_name(name)
        conf.origin[key] = "environment" if key in given else "default"
        conf.shown[key] = "(invalid)" if name in bad else _display(name, getattr(settings, name))
    return conf


def with_secret_key(conf: Configuration, *, create: bool = True) -> Configuration:
    """The secret key in place: the environment's, else (development only) ``./kom.secret``,
    generated on first start with ``create``."""
    settings = conf.settings or conf.partial  # "required" is told even beside other problems
    key = env_name("secret_key")
    if settings is None or settings.secret_key is not None or conf.shown.get(key) == "(invalid)":
        return conf
    if not settings.is_development():
        conf.problems.append(
            f"{key}: not set; it is required when KOM_ENVIRONMENT is not development "
            f"(here {settings.environment!r}). Generate one with {GENERATE_KEY}"
        )
        conf.settings = None
        return conf
    if conf.settings is None:
        return conf  # the development key file waits until everything else is right
    path = DEV_SECRET_FILE
    if not path.exists() and not create:
        conf.shown[key] = f"(not set: development generates {path} at first start)"
        return conf
    try:
        secret = _development_secret(path)
    except OSError as exc:
        conf.problems.append(
            f"{key}: not set, and the development key file {path.resolve()} cannot be used "
            f"({exc.strerror or exc}); set {key}"
        )
        conf.settings = None
        return conf
    try:
        conf.settings = Settings(**{**settings.model_dump(), "secret_key": secret})
    except ValidationError:
        conf.problems.append(
            f"{key}: not set, and {path.resolve()} holds no usable key (fewer than 16 characters); "
            f"restore it from a backup or set {key}"
        )
        conf.settings = None
        return conf
    conf.shown[key], conf.origin[key] = "**********", str(path)
    return conf


def _development_secret(path: Path) -> str:
    try:
        # O_EXCL with mode 0600: never readable by others, never overwriting a key in use.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32))
    log.warning("generated a development KOM_SECRET_KEY in %s; set KOM_SECRET_KEY in production", path)
    return path.read_text().strip()


def port_problem(listen: Listen) -> str | None:
    """Why ``listen`` cannot be bound (in use, not an address here, privileged), or None."""
    where = f"{listen.option} {listen.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"--host {listen.host}: not an address of this machine ({exc.strerror})"
    with socket.socket(family, kind, proto) as probe:
        # Like uvicorn and prometheus_client: a port in TIME_WAIT is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{where}: already in use on {listen.host} (another process listens there)"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"--host {listen.host}: not an address of this machine"
            if exc.errno == errno.EACCES:
                return f"{where}: this user may not listen below port 1024; choose 1024 or above"
            return f"{where}: cannot listen on {listen.host} ({exc.strerror})"
    return None


async def database_problem(settings: Settings, timeout: float = DATABASE_TIMEOUT) -> str | None:
    """Why KOM cannot use its database (missing directory, not a database, no answer), or None."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    shown = f"{env_name('database_url')}={masked_database_url(settings.database_url)!r}"
    if url.get_backend_name() == "sqlite":
        reason = _sqlite_problem(Path(url.database or ""))
    else:
        reason = await _postgresql_problem(settings.database_url, timeout)
    return f"{shown}: {reason}" if reason else None


def _sqlite_problem(path: Path) -> str | None:
    # Looked at without creating anything: `kom check` must not leave an empty kom.db behind.
    folder = path.resolve().parent
    if not folder.is_dir():
        return f"the directory {folder} does not exist"
    if not os.access(folder, os.W_OK):
        return f"KOM cannot write in {folder} (SQLite keeps its journal beside the file)"
    if path.is_dir():
        return f"{path} is a directory, not a database file"
    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as exc:
            return f"{path} is not a usable SQLite database ({exc})"
    return None


async def _postgresql_problem(url: str, timeout: float) -> str | None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from plugin.store.store import async_url

    engine = create_async_engine(async_url(url), connect_args={"timeout": timeout})
    try:
        async with asyncio.timeout(timeout + 1), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"cannot connect ({_reason(exc)})"
    finally:
        await engine.dispose()
    return None


def _reason(exc: BaseException) -> str:
    """The driver's own words, on one line, without SQLAlchemy's wrapping and links."""
    inner = getattr(exc, "orig", None) or exc
    if isinstance(inner, TimeoutError):
        return "no answer in time"
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return text.removeprefix("(").split(") [SQL", 1)[0]


def report(problems: Sequence[str], command: str) -> NoReturn:
    """Print one line per problem on stderr and exit: nothing was started or changed."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    count = f"{len(problems)} configuration problem{'s' if len(problems) != 1 else ''}"
    print(f"kom {command}: not started ({count}; `kom check` shows the configuration)", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


def settings_or_exit(
    command: str, *, secret: bool = True, database: bool = True, listen: Sequence[Listen] = ()
) -> Settings:
    """The settings ``command`` starts with, after every check it needs; else ``report``."""
    conf = read()
    if secret:
        conf = with_secret_key(conf)
    problems = list(conf.problems)
    problems += [found for port in listen if (found := port_problem(port))]
    if conf.settings is not None and database and not problems:
        found = asyncio.run(database_problem(conf.settings))
        problems += [found] if found else []
    if problems or conf.settings is None:
        report(problems, command)
    return conf.settings
