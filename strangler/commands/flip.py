"""``strangler flip ROUTE MODE [--percent N] [--force]`` / ``strangler flip ROUTE --reset``.

Sets or clears a route's runtime override through the admin API, with the token
from ``$STRANGLER_ADMIN_TOKEN``; the change reaches every replica sharing the
state store. Exit codes: 0 done; 2 bad usage (checked here first, or refused by
the API as a bad request, unknown route, or canary refused for mismatches
without ``--force``); 1 anything else (token refused, writes disabled, state
store down, admin API unreachable). Every failure prints one line saying what
to do.
"""

from __future__ import annotations

import argparse
import os
import sys

from strangler.control.client import AdminClient, admin_url
from strangler.errors import AdminError

_USAGE_STATUSES = frozenset({400, 404, 409})


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.reset:
        if args.mode is not None or args.percent is not None or args.force:
            return "--reset takes no MODE, --percent or --force"
        return None
    if args.mode is None:
        return "give a MODE (legacy, shadow, canary, new) or --reset"
    if args.mode == "canary" and args.percent is None:
        return "mode canary needs --percent N (0-100)"
    if args.mode != "canary" and args.percent is not None:
        return f"--percent only applies to mode canary, not {args.mode}"
    if args.percent is not None and not 0 <= args.percent <= 100:
        return f"--percent {args.percent:g} is outside 0-100"
    return None


def _hint(exc: AdminError, token: str | None) -> str:
    if exc.status == 401 and not token:
        return f"{exc} (set STRANGLER_ADMIN_TOKEN to the proxy's admin token)"
    if exc.status == 401:
        return f"{exc} (STRANGLER_ADMIN_TOKEN does not match the proxy's admin.token)"
    if exc.status == 0:
        return f"{exc} (is `strangler serve` running? point --admin or STRANGLER_ADMIN at it)"
    return str(exc)


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem is not None:
        print(f"strangler flip: {problem}", file=sys.stderr)
        return 2
    token = os.environ.get("STRANGLER_ADMIN_TOKEN") or None
    client = AdminClient(admin_url(args.admin, args.config), token)
    try:
        if args.reset:
            result = client.clear_override(args.route)
        else:
            result = client.set_override(args.route, args.mode, args.percent, force=args.force)
    except AdminError as exc:
        print(f"strangler flip: {_hint(exc, token)}", file=sys.stderr)
        return 2 if exc.status in _USAGE_STATUSES else 1
    share = f" {float(result['percent']):g}%" if result.get("mode") == "canary" else ""
    what = "override cleared" if args.reset else "override set"
    print(
        f"{result.get('name', args.route)}: {what}; now {result.get('mode')}{share} "
        f"(source: {result.get('source')})"
    )
    return 0
