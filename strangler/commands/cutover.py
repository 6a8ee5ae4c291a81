"""``strangler cutover CONTEXT --to service|legacy [--admin URL]``.

Moves a bounded context's writes and data ownership through the admin API
(token from ``$STRANGLER_ADMIN_TOKEN``) and prints how long writes were held.
Exit codes: 0 the move completed; 1 it was aborted (everything stayed with the
old owner), refused (a precondition, printed), or the admin API / state store
could not be reached; 2 bad usage or an unknown context.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from strangler.commands.flip import _hint
from strangler.control.client import AdminClient, admin_url
from strangler.errors import AdminError


def _held(result: dict[str, Any]) -> str:
    return f"{float(result.get('held_seconds') or 0.0) * 1000:.0f} ms"


def run(args: argparse.Namespace) -> int:
    token = os.environ.get("STRANGLER_ADMIN_TOKEN") or None
    client = AdminClient(admin_url(args.admin, args.config), token, timeout=120.0)
    try:
        result = client.cutover(args.context, args.to)
    except AdminError as exc:
        body = exc.body
        if exc.status == 409 and body.get("result") == "aborted":
            print(
                f"{args.context}: cutover to {args.to} ABORTED after holding writes "
                f"{_held(body)}; everything stayed with {body.get('owner')}: {body.get('reason')}",
                file=sys.stderr,
            )
            print(
                "  nothing moved; fix the reason (e.g. is `strangler sync` running and caught "
                "up?) and run the cutover again",
                file=sys.stderr,
            )
            return 1
        print(f"strangler cutover: {_hint(exc, token)}", file=sys.stderr)
        return 2 if exc.status in (400, 404) else 1
    drained = result.get("position")
    print(
        f"{args.context}: writes and data now owned by {result.get('owner')} "
        f"(epoch {result.get('epoch')}); writes held {_held(result)}"
        + (f", drained to {drained}" if drained else "")
    )
    return 0
