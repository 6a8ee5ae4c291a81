"""``strangler check routes.yaml``: validate a config the way ``serve`` would load it.

Prints one line per problem (``file: line N: key.path: what is wrong (hint)``) —
schema errors and cross-references together, in one pass — and exits 2, or
prints a one-paragraph summary and exits 0. It builds the route table too, so
bad patterns and ambiguous routes are caught here, not at the first reload.
Never starts servers or touches the network.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from strangler.config import MODES, Config, load_config, locate
from strangler.errors import ConfigError
from strangler.routing.table import RouteTable
from strangler.sync.adapters import reverse_problems


def validate(path: str) -> Config:
    """Load and compile ``path``; raises ConfigError naming the file and every problem."""
    config = load_config(path)
    base_dir = Path(path).resolve().parent
    try:
        RouteTable.build(config, base_dir=base_dir)
    except ConfigError as exc:
        raise ConfigError(locate(config, exc.problems), path) from None
    if config.sync is not None:
        contexts = {name: c.tables for name, c in config.contexts.items()}
        problems = reverse_problems(config.sync, contexts, base_dir)
        if problems:
            raise ConfigError(locate(config, problems), path)
    return config


def summary(path: str, config: Config) -> str:
    modes = Counter(r.mode for r in config.routes)
    by_mode = ", ".join(f"{modes[m]} {m}" for m in MODES if modes[m])
    lines = [
        f"{path}: ok",
        f"  listen {config.listen}, admin {config.admin.listen}, state {config.state.url}",
        f"  {len(config.upstreams)} upstreams; unmatched paths go to {config.legacy!r}",
        f"  {len(config.routes)} routes" + (f" ({by_mode})" if by_mode else ""),
    ]
    for r in config.routes:
        share = f" {r.percent:g}%" if r.mode == "canary" else ""
        lines.append(f"    {r.name}: {r.match.path} -> {r.to} [{r.mode}{share}]")
    for name, context in config.contexts.items():
        tables = f", tables {', '.join(context.tables)}" if context.tables else ""
        lines.append(
            f"  context {name}: routes {', '.join(context.routes)}{tables} "
            "(owner: runtime state, see strangler status)"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path: str = args.config
    try:
        config = validate(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem.located()}", file=sys.stderr)
        return 2
    print(summary(path, config))
    return 0
