"""``strangler status [--admin URL]``: the route table of a running proxy, for people.

One line per route: effective mode and percent, where they come from (config,
override, auto-rollback), requests in the last minute, error rate, fallbacks and
the shadow match rate; the reason of an automatic rollback below its route; then
who owns each bounded context's writes. Reads ``GET /api/routes`` and
``GET /api/contexts``; never changes anything. Exit 0, or 1 if the admin API cannot
be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from strangler.control.client import AdminClient, admin_url
from strangler.errors import AdminError

_COLUMNS = ("ROUTE", "MODE", "PERCENT", "SOURCE", "REQ/MIN", "ERRORS", "FALLBACKS", "MATCH")


def _rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def _row(route: dict[str, Any]) -> tuple[str, ...]:
    traffic = route.get("traffic") or {}
    mode = str(route.get("mode", "?"))
    percent = route.get("percent")
    return (
        str(route.get("name", "?")),
        mode,
        f"{float(percent):g}%" if percent is not None else "-",
        str(route.get("source", "?")),
        str(traffic.get("requests_per_min", "-")),
        _rate(traffic.get("error_rate")),
        str(traffic.get("fallbacks", "-")),
        _rate(route.get("shadow_match_rate")),
    )


def render(document: dict[str, Any]) -> str:
    """The table ``strangler status`` prints for a ``GET /api/routes`` document."""
    routes = document.get("routes") or []
    rows = [_COLUMNS, *(_row(r) for r in routes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = []
    for row, route in zip(rows, [None, *routes], strict=True):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if route is not None and route.get("reason"):
            lines.append(f"  └ {route.get('source')}: {route['reason']}")
    if not routes:
        lines.append("(no routes: everything goes to legacy)")
    state = document.get("state") or {}
    footer = f"config version {document.get('config_version')}"
    if state:
        health = "connected" if state.get("connected") else f"UNREACHABLE ({state.get('error')})"
        footer += f"; state {state.get('url')} {health}"
    lines.append(footer)
    if state.get("notice"):  # e.g. serving the local copy while the store is unreachable
        lines.append(f"state: {state['notice']}")
    if document.get("last_reload_error"):
        lines.append(f"last routes.yaml reload rejected: {document['last_reload_error']}")
    return "\n".join(lines)


def render_contexts(document: dict[str, Any]) -> str:
    """The contexts block: who owns each context's writes and data, and its last cutover."""
    lines = []
    for context in document.get("contexts") or []:
        state = context.get("state")
        line = (
            f"context {context.get('name')}: writes and data owned by {context.get('owner')} "
            f"(epoch {context.get('epoch')}"
            + (f", {state} -> {context.get('to')}" if state != "steady" else "")
            + ")"
        )
        last = context.get("last_cutover")
        if last:
            line += (
                f"; last cutover to {last.get('to')} {last.get('result')}, writes held "
                f"{float(last.get('held_seconds') or 0):.3f}s"
            )
            if last.get("reason"):
                line += f" ({last['reason']})"
        lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    url = admin_url(args.admin, args.config)
    client = AdminClient(url)
    try:
        document = client.routes()
        try:
            contexts = client.contexts()
        except AdminError as exc:
            if exc.status != 404:
                raise
            contexts = {}  # a proxy from before contexts existed
    except AdminError as exc:
        print(f"strangler status: {exc}", file=sys.stderr)
        return 1
    print(render(document))
    owners = render_contexts(contexts)
    if owners:
        print(owners)
    return 0
