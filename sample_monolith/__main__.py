"""``python -m sample_monolith --port 9000 --db sqlite:///shop.db [--seed N]``: run the shop."""

from __future__ import annotations

import argparse

from aiohttp import web

from sample_monolith.app import create_app
from sample_monolith.seed import seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_monolith", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--db", default="sqlite:///shop.db", help="SQLAlchemy URL")
    parser.add_argument(
        "--seed",
        type=int,
        metavar="CUSTOMERS",
        help="fill an empty database first with this many customers (2.5 orders each)",
    )
    args = parser.parse_args(argv)
    if args.seed:
        try:
            counts = seed(args.db, customers=args.seed, orders=args.seed * 5 // 2)
            print(f"seeded {counts}")
        except ValueError as exc:
            print(f"not seeding: {exc}")
    web.run_app(create_app(args.db), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
