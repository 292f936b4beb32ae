"""``kom``: the command line. Every command has ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from plugin import __version__


def _demo(args: argparse.Namespace) -> int:
    from plugin.demo import run_demo

    return asyncio.run(run_demo(color=not args.no_color))


def _sandbox(args: argparse.Namespace) -> int:
    from adapters.klarna.sandbox.server import run

    run(host=args.host, port=args.port)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from plugin import observability
    from plugin.runtime import check_schema, load_settings
    from plugin.web.app import create_app

    settings = load_settings()
    observability.setup(settings, level=args.log_level)
    asyncio.run(check_schema(settings))  # SQLite: migrated now; PostgreSQL: current, or exit
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
    from plugin.runtime import load_settings, run_worker

    observability.setup(load_settings(), level=args.log_level)
    return asyncio.run(run_worker(once=args.once, metrics_port=args.metrics_port))


def _migrate(args: argparse.Namespace) -> int:
    from plugin.runtime import migrate

    return asyncio.run(migrate(check=args.check))


def _configure(args: argparse.Namespace) -> int:
    from plugin.runtime import configure

    return asyncio.run(configure(args))


def _reconcile(args: argparse.Namespace) -> int:
    from plugin.reconcile_report import run
    from plugin.service.reconcile import Scope

    scope = Scope(installation=args.installation, order=args.order, since=args.since)
    code, output = asyncio.run(run(scope, as_json=args.json))
    print(output)
    return code


def _since(text: str) -> datetime:
    from plugin.reconcile_report import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(_: argparse.Namespace) -> int:
    from plugin.settings import Settings

    for name, value in Settings().model_dump().items():
        print(f"KOM_{name.upper()}={value if value is not None else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kom",
        description="KOM: one Klarna/Kustom capture per parcel, refunds allocated to the right invoice.",
    )
    parser.add_argument("--version", action="version", version=f"kom {__version__}")
    parser.add_argument(
        "--log-level",
        help="log level for this command (default: KOM_LOG_LEVEL for serve and worker, WARNING otherwise)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the refund-allocation scenarios against a local Order Management sandbox",
        description="Starts the sandbox on a free loopback port, then ships, captures and refunds the "
        "seed order (and a return spanning two parcels) through KOM's real planner and client, "
        "printing each invoice and the invoice each refund was booked on.",
    )
    demo.add_argument("--no-color", action="store_true", help="plain output")
    demo.set_defaults(handler=_demo)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a faithful local Klarna Order Management API",
        description="Serves the Order Management sandbox (captures, refunds, idempotency, allocation "
        "ledger, fault injection) until interrupted. Its admin API lives under /_sandbox/.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    sandbox.set_defaults(handler=_sandbox)

    serve = commands.add_parser(
        "serve",
        help="serve the app (webhooks, install, settings page) and run a worker in the same process",
        description="Runs KOM's web app on uvicorn. By default a worker runs in the same process on the "
        "same database (SQLite by default); at scale run several `kom serve --no-worker` and `kom worker`.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
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
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (all interfaces)"
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
        description="Non-interactive merchant settings for operators and automated setups. Without "
        "--channel the settings are the default for every channel of that installation.",
    )
    configure.add_argument("--saleor-api-url", required=True, help="the installation's Saleor API URL")
    configure.add_argument("--channel", help="channel slug (default: all channels of the installation)")
    configure.add_argument("--provider", required=True, choices=["klarna", "kustom"])
    configure.add_argument("--environment", required=True, choices=["playground", "production"])
    configure.add_argument(
        "--region", required=True, choices=["eu", "na", "oc"], help="Klarna region (Kustom: eu)"
    )
    configure.add_argument("--api-key", required=True, help="API key (klarna_..._api_... / kco_..._api_...)")
    configure.add_argument("--username", help="the UUID/MID username shown next to the key, if you use it")
    configure.add_argument("--base-url", help="override the API host (a proxy or a local sandbox)")
    configure.add_argument(
        "--extend-authorization",
        action=argparse.BooleanOptionalAction,
        help="extend an authorization about to expire with goods unshipped (default: keep; new: off)",
    )
    configure.set_defaults(handler=_configure)

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=(args.log_level or "WARNING").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
