"""``kom``: the command line. Every command has ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from plugin import __version__
from plugin.settings import LOG_LEVELS


def use_color(no_color: bool = False) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org)."""
    return not no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _demo(args: argparse.Namespace) -> int:
    from plugin.demo import run_demo

    return asyncio.run(run_demo(color=use_color(args.no_color)))


def _sandbox(args: argparse.Namespace) -> int:
    from adapters.klarna.sandbox.server import run

    run(host=args.host, port=args.port)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from plugin import observability
    from plugin.preflight import Listen, is_set, settings_or_exit
    from plugin.runtime import announce, check_schema
    from plugin.web.app import create_app

    settings = settings_or_exit("serve", listen=[Listen("--port", args.host, args.port)])
    if not is_set("public_url"):  # the default follows --port, so the manifest is right locally
        settings = settings.model_copy(update={"public_url": f"http://localhost:{args.port}"})
    observability.setup(settings, level=args.log_level)
    asyncio.run(check_schema(settings))  # SQLite: migrated now; PostgreSQL: current, or exit
    announce(settings, args.host, args.port, worker=not args.no_worker)
    app = create_app(settings, run_worker=not args.no_worker)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=(args.log_level or settings.log_level).lower(),
        log_config=None,  # observability.setup configured logging (text or JSON)
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from plugin import observability
    from plugin.preflight import Listen, settings_or_exit
    from plugin.runtime import run_worker

    metrics = [Listen("--metrics-port", "0.0.0.0", args.metrics_port)] if args.metrics_port else []
    settings = settings_or_exit("worker", listen=metrics)
    observability.setup(settings, level=args.log_level)
    return asyncio.run(run_worker(settings, once=args.once, metrics_port=args.metrics_port))


def _migrate(args: argparse.Namespace) -> int:
    from plugin.preflight import settings_or_exit
    from plugin.runtime import migrate

    # The schema needs no secret key: a migration Job may run without it.
    return asyncio.run(migrate(settings_or_exit("migrate", secret=False), check=args.check))


def _configure(args: argparse.Namespace) -> int:
    from plugin.configure import configure
    from plugin.preflight import settings_or_exit

    return asyncio.run(configure(settings_or_exit("configure"), args))


def _installations(_: argparse.Namespace) -> int:
    from plugin.configure import installations
    from plugin.preflight import settings_or_exit

    return asyncio.run(installations(settings_or_exit("installations")))


def _check(_: argparse.Namespace) -> int:
    from plugin.doctor import check

    return asyncio.run(check())


def _reconcile(args: argparse.Namespace) -> int:
    from plugin.preflight import settings_or_exit
    from plugin.reconcile_report import run
    from plugin.service.reconcile import Scope

    settings = settings_or_exit("reconcile")
    scope = Scope(installation=args.installation, order=args.order, since=args.since)
    code, output = asyncio.run(run(settings, scope, as_json=args.json))
    print(output)
    return code


def _since(text: str) -> datetime:
    from plugin.reconcile_report import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(_: argparse.Namespace) -> int:
    from plugin.preflight import read

    conf = read()
    for name, value in conf.shown.items():
        print(f"{name}={value}")
    for problem in conf.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2 if conf.problems else 0


def port_number(text: str) -> int:
    """A TCP port (argparse type): 1-65535, with a sentence otherwise."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range: a port is 1-65535")
    return port


def log_level(text: str) -> str:
    """A log level in any case (argparse type)."""
    level = text.strip().upper()
    level = {"WARN": "WARNING"}.get(level, level)
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level: choose debug, info, warning or error")
    return level


LOG_LEVEL_HELP = (
    "debug, info, warning or error, in any case (default: KOM_LOG_LEVEL for serve and worker, "
    "warning otherwise)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kom",
        description="KOM: one Klarna/Kustom capture per parcel, refunds allocated to the right invoice.",
    )
    parser.add_argument("--version", action="version", version=f"kom {__version__}")
    parser.add_argument("--log-level", type=log_level, default=None, help=LOG_LEVEL_HELP)
    # The same option after the command (`kom serve --log-level debug`); SUPPRESS keeps a
    # value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", type=log_level, default=argparse.SUPPRESS, help=LOG_LEVEL_HELP)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_subcommand_class(common)
    )

    demo = commands.add_parser(
        "demo",
        help="run the refund-allocation scenarios against a local Order Management sandbox",
        description="Starts the sandbox on a free loopback port, then ships, captures and refunds the "
        "seed order (and a return spanning two parcels) through KOM's real planner and client, "
        "printing each invoice and the invoice each refund was booked on.",
    )
    demo.add_argument(
        "--no-color", action="store_true", help="plain output (also without a terminal, or with NO_COLOR set)"
    )
    demo.set_defaults(handler=_demo)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a faithful local Klarna Order Management API",
        description="Serves the Order Management sandbox (captures, refunds, idempotency, allocation "
        "ledger, fault injection) until interrupted. Its admin API lives under /_sandbox/.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=port_number, default=8765, help="port to listen on (default 8765)")
    sandbox.set_defaults(handler=_sandbox)

    serve = commands.add_parser(
        "serve",
        help="serve the app (webhooks, install, settings page) and run a worker in the same process",
        description="Runs KOM's web app on uvicorn. By default a worker runs in the same process on the "
        "same database (SQLite by default); at scale run several `kom serve --no-worker` and `kom worker`.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--no-worker", action="store_true", help="serve web requests only; run `kom worker` apart"
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        help="proxies whose X-Forwarded-* headers are trusted: comma-separated addresses or * "
        "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser(
        "worker",
        help="run a worker alone: sync due orders with the provider and report outcomes",
        description="Claims due orders from the database (one worker per order at a time), syncs each with "
        "Klarna/Kustom and reports outcomes to the platform. Stops cleanly on SIGINT/SIGTERM.",
    )
    worker.add_argument("--once", action="store_true", help="process what is due, then exit")
    worker.add_argument(
        "--metrics-port", type=port_number, help="serve Prometheus metrics on this port (all interfaces)"
    )
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date (run once per upgrade, before starting the new version)",
        description="Applies pending schema migrations to KOM_DATABASE_URL. On PostgreSQL, `kom serve` and "
        "`kom worker` refuse to start until this has run; a SQLite database is migrated automatically "
        "by whichever KOM process opens it.",
    )
    migrate.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when migrations are pending"
    )
    migrate.set_defaults(handler=_migrate)

    configure = commands.add_parser(
        "configure",
        help="set a Saleor installation's provider and credentials (per channel or default)",
        description="Non-interactive merchant settings for operators and automated setups, checked "
        "like the dashboard's Settings page. Without --channel the settings are the default for every "
        "channel of that installation. The API key (or password) is read from stdin with "
        "--api-key-stdin, or from the environment variable KOM_API_KEY, never from the command line; "
        "with neither, the channel's saved key is kept.",
        epilog="example: printenv KLARNA_KEY | kom configure --saleor-api-url "
        "https://shop.example.com/graphql/ --provider klarna --environment playground --region eu "
        "--api-key-stdin --test",
    )
    configure.add_argument("--saleor-api-url", required=True, help="the installation's Saleor API URL")
    configure.add_argument("--channel", help="channel slug (default: all channels of the installation)")
    configure.add_argument("--provider", required=True, choices=["klarna", "kustom"])
    configure.add_argument("--environment", required=True, choices=["playground", "production"])
    configure.add_argument(
        "--region", choices=["eu", "na", "oc"], help="Klarna's region (Kustom: none needed, it is eu)"
    )
    configure.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the API key (klarna_..._api_... / kco_..._api_...) or password from stdin's first line",
    )
    configure.add_argument("--api-key", help=argparse.SUPPRESS)  # refused with a reason: see configure
    configure.add_argument("--username", help="the UUID/MID username shown next to the key, if you use it")
    configure.add_argument("--base-url", help="override the API host (a proxy or a local sandbox)")
    configure.add_argument(
        "--capture-mode", choices=["on_fulfillment", "manual"], help="default: as saved, else on_fulfillment"
    )
    configure.add_argument(
        "--shipping-fee", choices=["first_parcel", "last_parcel"], help="default: as saved, else first_parcel"
    )
    configure.add_argument(
        "--unknown-origin",
        choices=["earliest_first", "latest_first"],
        help="invoice for returns of unknown parcel (default: as saved, else earliest_first)",
    )
    configure.add_argument(
        "--extend-authorization",
        action=argparse.BooleanOptionalAction,
        help="extend an authorization about to expire with goods unshipped (default: keep; new: off)",
    )
    configure.add_argument(
        "--test", action="store_true", help="run the connection test first; save only when it passes"
    )
    configure.set_defaults(handler=_configure)

    listing = commands.add_parser(
        "installations",
        help="list the installations KOM knows and the settings of each channel",
        description="Every shop platform installation in KOM_DATABASE_URL, with the provider, "
        "environment and region each of its channels uses (secrets are never shown).",
    )
    listing.set_defaults(handler=_installations)

    check = commands.add_parser(
        "check",
        help="print the effective configuration (secrets masked) and everything wrong with it",
        description="Reads every KOM_* setting as `kom serve` would, shows where each came from, tries "
        "the database, and lists each problem on one line. Exits 2 when something is wrong. "
        "Changes nothing (it does not create kom.secret or the database).",
    )
    check.set_defaults(handler=_check)

    reconcile = commands.add_parser(
        "reconcile",
        help="compare each open order with the provider: parcels not captured, refunds not sent, drift",
        description="For every order changed since --since (and every order KOM worked on since then), "
        "or just --order: the platform's order against the provider's. Lists parcels not captured, "
        "refunds not sent, refusals, captures and refunds made outside KOM (a foreign capture matching a "
        "parcel is adopted with its references; a foreign refund that broke allocation is flagged), "
        "amount drift and authorizations about to expire, each with a suggested action. The findings "
        "also show on the dashboard as needs-attention items. Reads the platform and the provider, "
        "writes nothing there. Exit status: 0 all in sync, 1 findings, 2 unknown installation or order "
        "(or a database schema that needs `kom migrate`).",
    )
    reconcile.add_argument("--installation", help="an installation's id or platform API URL (default: all)")
    reconcile.add_argument("--order", help="one platform order id (e.g. a Saleor Order global id)")
    reconcile.add_argument(
        "--since",
        type=_since,
        help="orders changed since: a duration (30d, 12h) or an ISO date/date-time (default 30d)",
    )
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON")
    reconcile.set_defaults(handler=_reconcile)

    settings = commands.add_parser(
        "settings",
        help="print the effective KOM_* configuration (secrets masked)",
        description="Prints every KOM_* setting as this process sees it; secrets show as **********.",
    )
    settings.set_defaults(handler=_settings)
    return parser


def _subcommand_class(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """A subcommand parser class that carries the options every command accepts."""

    class Subcommand(argparse.ArgumentParser):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("parents", [common])
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    return Subcommand


def _stdout_gone() -> int:
    """The reader went away (`kom demo | head`): stop quietly, as `cat` does."""
    # Python would complain again when it flushes stdout at exit: point it at /dev/null.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `kom` alone: say what it can do
        parser.print_help()
        return 0
    logging.basicConfig(
        level=args.log_level or "WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:  # Ctrl-C: the user knows why it stopped; no traceback
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
