"""``strangler explain METHOD URL [-H 'Name: value']...``: who would answer a request.

Builds the route table from routes.yaml and runs the proxy's own ``decide()`` on
the request described, then prints the matched route (or ``-``), its mode, the
decision (which upstream answers, ``to_new``, the shadow target, for a canary the
sticky key, its bucket against the percent, and the fallback), the upstream's URL
and the adapter. It sends nothing. Runtime overrides and context owners live in
the state store: by default it reads routes.yaml only and says so; with
``--admin URL`` it applies the live overrides and owners from the admin API.
Exit 0, or 2 for a bad config or bad arguments.
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from strangler.commands.check import validate
from strangler.config import HTTP_METHODS, SAFE_METHODS, Config
from strangler.control.client import AdminClient, admin_url
from strangler.control.ownership import Ownership
from strangler.errors import AdminError, ConfigError, Problem
from strangler.override import Override
from strangler.routing.decision import BUCKETS, Decision, decide, sticky_key
from strangler.routing.paths import BadPath
from strangler.routing.table import Route, RouteTable


def _headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError([Problem("-H", f"{item!r} is not 'Name: value'")])
        headers[name.strip().lower()] = value.strip()
    return headers


def _live(url: str) -> tuple[dict[str, Override], dict[str, Ownership]]:
    """The overrides and context owners a running proxy uses now."""
    client = AdminClient(url)
    overrides = {
        str(r["name"]): Override.from_dict(r["override"])
        for r in client.routes().get("routes") or []
        if r.get("override")
    }
    try:
        contexts = client.contexts().get("contexts") or []
    except AdminError as exc:
        if exc.status != 404:
            raise
        contexts = []  # a proxy from before contexts existed
    owners = {
        str(c["name"]): Ownership(str(c["name"]), owner=c.get("owner", "legacy")) for c in contexts
    }
    return overrides, owners


def _adapter(route: Route) -> str:
    adapter = route.config.adapter
    if adapter is None:
        return "none"
    if isinstance(adapter, str):
        return adapter
    return "declarative" + (f" (path {adapter.path})" if adapter.path else "")


def _canary(route: Route, decision: Decision, headers: Mapping[str, str], ip: str | None) -> str:
    key = sticky_key(route, headers, ip) if route.sticky else None
    wanted = ", ".join(f"{k}:{n}" if n else k for k, n in route.sticky) or "none configured"
    side = "new side" if decision.bucket < route.threshold else "legacy side"
    where = f"< {route.threshold}" if decision.bucket < route.threshold else f">= {route.threshold}"
    if key is None:
        return (
            f"no sticky key on this request (sticky: {wanted}): the bucket is random per "
            f"request; this time bucket {decision.bucket} of {BUCKETS}, {where} -> {side}"
        )
    return (
        f"sticky key {key} (first present of {wanted}) -> bucket {decision.bucket} "
        f"of {BUCKETS}; percent {route.percent:g} answers buckets < {route.threshold} -> {side}"
    )


def explain(
    config: Config,
    table: RouteTable,
    method: str,
    url: str,
    headers: Mapping[str, str],
    ip: str | None,
) -> list[str]:
    """The lines ``strangler explain`` prints for one request."""
    path = urllib.parse.urlsplit(url).path or "/"
    decision = decide(table, method, path, headers, ip)
    answer = decision.upstream
    lines = [f"{method} {decision.path}"]
    route = decision.route
    if route is None:
        lines += [
            "  route     - (no route matches)",
            f"  answers   {answer} (legacy: unmatched paths go to {config.legacy!r})",
            f"  upstream  {config.upstreams[answer].url}",
        ]
        return lines
    rc = route.config
    fallback = f"yes: legacy answers if {rc.to} fails" if decision.fallback else "no"
    params = ", ".join(f"{k}={v}" for k, v in decision.params.items())
    share = f" {route.percent:g}%" if route.mode == "canary" else ""
    lines += [
        f"  route     {route.name} (match {rc.match.path} -> {rc.to})",
        f"  params    {params or '-'}",
        f"  mode      {route.mode}{share} (from {route.source})",
    ]
    if route.mode == "canary":
        lines.append(f"  canary    {_canary(route, decision, headers, ip)}")
    if route.context is not None:
        lines.append(
            f"  context   {route.context}: writes go to its owner, {route.owner}"
            + (" (this is a write)" if method not in SAFE_METHODS else "")
        )
    lines += [
        f"  answers   {answer} (to_new: {'yes' if decision.to_new else 'no'})",
        f"  upstream  {config.upstreams[answer].url}",
        f"  shadow    {decision.shadow_to or '-'}",
        f"  fallback  {fallback}",
        f"  adapter   {_adapter(route)}"
        + ("" if decision.to_new or rc.adapter is None else " (not used: legacy answers)"),
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    method = str(args.method).upper()
    if method not in HTTP_METHODS:
        raise ConfigError([Problem("METHOD", f"{args.method!r} is not an HTTP method")])
    headers = _headers(args.header or [])
    config = validate(args.config)
    if args.admin:
        overrides, owners = _live(admin_url(args.admin, None))
        note = f"modes and context owners: live from {args.admin}"
    else:
        overrides, owners = {}, {}
        note = (
            "routes.yaml only: no runtime overrides read, contexts owned by legacy "
            "(--admin URL applies the live ones)"
        )
    base_dir = Path(args.config).resolve().parent
    table = RouteTable.build(config, overrides, base_dir=base_dir, ownerships=owners)
    try:
        lines = explain(config, table, method, args.url, headers, args.ip)
    except BadPath as exc:
        raise ConfigError([Problem("URL", f"{args.url!r}: {exc}")]) from None
    print("\n".join([*lines, f"  modes     {note}"]))
    return 0
