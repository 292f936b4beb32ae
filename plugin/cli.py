"""``kom``: the command line. Every command has ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from plugin import __version__


def _demo(args: argparse.Namespace) -> int:
    from plugin.demo import run_demo

    return asyncio.run(run_demo(color=not args.no_color))


def _sandbox(args: argparse.Namespace) -> int:
    from adapters.klarna.sandbox.server import run

    run(host=args.host, port=args.port)
    return 0


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
    parser.add_argument("--log-level", default="WARNING", help="log level for this command (default WARNING)")
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
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
