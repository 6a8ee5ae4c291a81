"""The ``strangler`` command line: argument parsing and dispatch only.

Each command lives in ``strangler.commands.<name>`` with ``run(args) -> int`` and is
imported only when used, so ``strangler check`` never pays for the proxy or CDC.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from strangler import __version__
from strangler.errors import ConfigError, StranglerError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strangler",
        description="A strangler-fig migration proxy: route by config, shadow and compare, "
        "canary, roll back, and keep the new services' data aligned by CDC.",
    )
    parser.add_argument("--version", action="version", version=f"strangler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the sample migration end to end, no servers needed")
    demo.add_argument("--exit", action="store_true", help="exit after the steps (0 if all passed)")
    demo.add_argument(
        "--stack",
        choices=["embedded", "local"],
        default="embedded",
        help="embedded (SQLite, memory) or local (PostgreSQL, Redis, Debezium, Kafka)",
    )
    demo.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    demo.add_argument("--admin-port", type=int, default=0, help="admin port (default: a free one)")
    demo.add_argument("--workdir", default=None, help="folder for the demo's databases")

    serve = sub.add_parser("serve", help="run the proxy (public + admin listeners)")
    serve.add_argument("-c", "--config", default="routes.yaml")
    serve.add_argument(
        "--workers",
        type=int,
        default=0,
        help="proxy processes (default: one per core; see README: Workers)",
    )
    serve.add_argument(
        "--local-copy",
        metavar="PATH",
        help="where this replica keeps the last state it saw (default: state.local_copy)",
    )
    serve.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight requests may finish; then 503 (default: 10)",
    )

    check = sub.add_parser("check", help="validate a routes.yaml")
    check.add_argument("config", nargs="?", default="routes.yaml")

    explain = sub.add_parser(
        "explain", help="which route and upstream would answer a request (sends nothing)"
    )
    explain.add_argument("method", metavar="METHOD")
    explain.add_argument("url", metavar="URL", help="a path or a full URL (/api/customers/42)")
    explain.add_argument(
        "-H",
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="a request header (repeatable); Cookie: sid=... for cookie stickiness",
    )
    explain.add_argument("--ip", default=None, help="the client address (for sticky: [ip])")
    explain.add_argument("-c", "--config", default="routes.yaml")
    explain.add_argument(
        "--admin", default=None, help="apply the live overrides and owners of this admin URL"
    )

    status = sub.add_parser("status", help="table of routes from a running proxy")
    status.add_argument("--admin", default=None, help="admin URL (default: $STRANGLER_ADMIN)")
    status.add_argument("-c", "--config", default=None, help="routes.yaml to find the admin URL")

    flip = sub.add_parser("flip", help="set or clear a route's runtime override")
    flip.add_argument("route")
    flip.add_argument("mode", nargs="?", choices=["legacy", "shadow", "canary", "new"])
    flip.add_argument("--percent", type=float, default=None)
    flip.add_argument("--reset", action="store_true", help="clear the override")
    flip.add_argument("--force", action="store_true", help="flip even above the mismatch rate")
    flip.add_argument("--admin", default=None, help="admin URL (default: $STRANGLER_ADMIN)")
    flip.add_argument("-c", "--config", default=None, help="routes.yaml to find the admin URL")

    cutover = sub.add_parser(
        "cutover", help="move a bounded context's writes and data ownership (and back)"
    )
    cutover.add_argument("context")
    cutover.add_argument("--to", required=True, choices=["service", "legacy"])
    cutover.add_argument("--admin", default=None, help="admin URL (default: $STRANGLER_ADMIN)")
    cutover.add_argument("-c", "--config", default=None, help="routes.yaml to find the admin URL")

    sync = sub.add_parser("sync", help="run the CDC worker")
    sync.add_argument("-c", "--config", default="routes.yaml")
    sync.add_argument(
        "--retry-dead",
        action="store_true",
        help="re-apply dead-lettered events (and what they parked), then exit",
    )

    verify = sub.add_parser("verify", help="compare monolith and service data; report drift")
    verify.add_argument("-c", "--config", default="routes.yaml")
    verify.add_argument("--repair", action="store_true", help="rewrite drifting rows")
    verify.add_argument(
        "--reverse",
        action="store_true",
        help="verify the way back: the service's data mapped to the monolith's tables",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    module = importlib.import_module(f"strangler.commands.{args.command}")
    try:
        code: int = module.run(args)
    except ConfigError as exc:
        for problem in exc.problems:
            line = problem.located()
            print(f"{exc.source}: {line}" if exc.source else line, file=sys.stderr)
        return 2
    except StranglerError as exc:
        print(f"strangler {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
