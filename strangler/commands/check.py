"""``strangler check routes.yaml``: validate a config the way ``serve`` would load it.

Prints one line per problem (``file: line N: key.path: what is wrong (hint)``) —
schema errors and cross-references together, in one pass — and exits 2, or
prints a one-paragraph summary and exits 0. It builds the route table too, so
bad patterns and ambiguous routes are caught here, not at the first reload.
Never starts servers or touches the network.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from strangler.config import MODES, Config, RouteConfig, load_config, locate
from strangler.errors import ConfigError, Problem
from strangler.routing.table import RouteTable
from strangler.sync.adapters import reverse_problems
from strangler.sync.keys import config_problems
from strangler.yaml_source import read_yaml


def validate(path: str) -> Config:
    """Load and compile ``path``; raises ConfigError naming the file and every problem."""
    base_dir = Path(path).resolve().parent
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = [*exc.problems, *_match_problems(path)]
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0), exc.source) from None
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


def _match_problems(path: str) -> list[Problem]:
    """Bad path patterns and ambiguous routes among the routes that validate on their
    own, so they come in the same run as the schema errors of the rest of the file."""
    try:
        where = read_yaml(Path(path).read_text(encoding="utf-8"), os.environ)
    except (OSError, ConfigError):
        return []
    raw = where.data.get("routes") if isinstance(where.data, dict) else None
    kept: list[int] = []
    routes: list[RouteConfig] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            route = RouteConfig.model_validate(item)
        except ValidationError:
            continue
        kept.append(i)
        # adapters are checked (and imported) by the cross-checks already
        routes.append(route.model_copy(update={"adapter": None}))
    partial = Config.model_construct(legacy="", upstreams={}, routes=tuple(routes))
    try:
        RouteTable.build(partial)
    except ConfigError as exc:

        def renumber(match: re.Match[str]) -> str:
            return f"routes[{kept[int(match.group(1))]}]"

        found = [
            Problem(re.sub(r"^routes\[(\d+)\]", renumber, p.key), p.message)
            for p in exc.problems
            if ".match" in p.key
        ]
        return where.locate(found)
    return []


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
        if config.sync is not None:
            # The captured tables' keys, read from the monolith (keys.py): only `check`
            # connects; a table without a primary or declared unique key is refused.
            problems, warnings = config_problems(config.sync)
            for warning in warnings:
                print(f"{path}: warning: {warning}", file=sys.stderr)
            if problems:
                raise ConfigError(locate(config, problems), path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem.located()}", file=sys.stderr)
        return 2
    print(summary(path, config))
    return 0
