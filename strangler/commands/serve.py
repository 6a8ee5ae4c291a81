"""``strangler serve -c routes.yaml [--workers N]``: run the proxy until stopped.

Validates the config like ``strangler check`` (bad config: one line per
problem, exit 2), then hands over to :mod:`strangler.process`. Exit 0 after a
graceful stop (SIGTERM/SIGINT), 1 if the proxy could not start.
"""

from __future__ import annotations

import argparse
import logging

from strangler import build
from strangler.commands.check import validate
from strangler.process import serve


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("strangler").info("strangler build: %s", build.DESCRIPTION)
    config = validate(args.config)  # ConfigError: the CLI prints each problem, exits 2
    return serve(args.config, config, args.workers, loop=args.loop)
