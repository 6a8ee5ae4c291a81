"""``strangler serve -c routes.yaml [--workers N] [--grace SECONDS]``: run the proxy until stopped.

Validates the config like ``strangler check`` (bad config: one line per
problem, exit 2), then hands over to :mod:`strangler.process`. Exit 0 after a
graceful stop (SIGTERM/SIGINT), 1 if the proxy could not start.
"""

from __future__ import annotations

import argparse
import logging
import sys

from strangler.commands.check import validate
from strangler.process import serve
from strangler.serve import SHUTDOWN_GRACE


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    config = validate(args.config)  # ConfigError: the CLI prints each problem, exits 2
    if args.local_copy:
        state = config.state.model_copy(update={"local_copy": args.local_copy})
        config = config.model_copy(update={"state": state})
    grace = SHUTDOWN_GRACE if args.grace is None else args.grace
    if grace < 0:
        print(f"strangler serve: --grace {grace:g}: must be 0 seconds or more", file=sys.stderr)
        return 2
    return serve(args.config, config, args.workers, grace=grace, loop=args.loop)
