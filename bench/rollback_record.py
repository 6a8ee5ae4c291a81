"""Cost of automatic rollback on the request path: one ``RollbackMonitor.record`` call.

Run: python3 bench/rollback_record.py [--rounds 500000]. Builds a router with a
canary route that has a ``rollback:`` block and one that has none, wires a
control plane on the memory store (not started: only the listener is timed),
and times the listener per request for: a request to a route without
rollback, a request served by legacy, and a request served by ``to``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from strangler.config import parse_config
from strangler.control.plane import ControlPlane
from strangler.control.state import MemoryStateStore
from strangler.metrics import Metrics
from strangler.routing.router import Router
from strangler.runtime import RequestRecord


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=500_000)
    rounds = parser.parse_args().rounds
    route = {"to": "new", "mode": "canary", "percent": 50}
    config = parse_config(
        {
            "legacy": "old",
            "upstreams": {
                "old": {"url": "http://127.0.0.1:1"},
                "new": {"url": "http://127.0.0.1:2"},
            },
            "routes": [
                {"name": "plain", "match": {"path": "/plain/**"}, **route},
                {
                    "name": "guarded",
                    "match": {"path": "/guarded/**"},
                    "rollback": {"error_rate": 0.05},
                    **route,
                },
            ],
        }
    )
    plane = ControlPlane(Router(config), MemoryStateStore())
    record = plane.rollback.record
    cases = {
        "route without rollback": RequestRecord("plain", "new", 200, 0.001, True),
        "served by legacy": RequestRecord("guarded", "old", 200, 0.001, False),
        "served by `to` (counted)": RequestRecord("guarded", "new", 500, 0.001, True, "status"),
    }
    print(f"# {platform.platform()}, Python {platform.python_version()}, {rounds} calls each")
    print("| request | ns per call |")
    print("|---|---|")

    def timed(call: Callable[[RequestRecord], None], rec: RequestRecord) -> float:
        started = time.perf_counter()
        for _ in range(rounds):
            call(rec)
        return (time.perf_counter() - started) / rounds * 1e9

    # Two references from the same run, since a shared machine's speed varies a lot.
    counted = cases["served by `to` (counted)"]
    print(f"| (reference) an empty listener | {timed(lambda r: None, counted):.0f} |")
    print(f"| (reference) the metrics listener | {timed(Metrics().listener, counted):.0f} |")
    for name, rec in cases.items():
        print(f"| {name} | {timed(record, rec):.0f} |")


if __name__ == "__main__":
    main()
