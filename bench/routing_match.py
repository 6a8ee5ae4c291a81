"""Route matching and decisions: cost per request with 10 vs 10,000 routes.

Run: python3 bench/routing_match.py [--rounds 5]. Prints CPU microseconds per call
of ``decide()`` (normalise + match + bucket) for paths hitting an exact route,
a ``{param}`` route, a ``/**`` subtree and nothing, in a table of 10 routes and
one of 10,000. The two columns should be about equal: matching is a dict lookup
plus a segment-trie walk whose cost depends on the path, not the table.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

from strangler.config import parse_config
from strangler.routing.decision import decide
from strangler.routing.table import RouteTable

UPSTREAMS = {"monolith": {"url": "http://127.0.0.1:9000"}, "new": {"url": "http://127.0.0.1:9001"}}


def _route(name: str, path: str, **extra: Any) -> dict[str, Any]:
    match: dict[str, Any] = {"path": path}
    for key in ("methods", "headers"):
        if key in extra:
            match[key] = extra.pop(key)
    return {"name": name, "match": match, "to": "new", **extra}


def table(groups: int) -> RouteTable:
    """5 routes per group: exact, {param}, /**, methods, headers."""
    canary = {"mode": "canary", "percent": 30, "sticky": ["header:X-User-Id", "ip"]}
    routes: list[dict[str, Any]] = []
    for i in range(groups):
        routes += [
            _route(f"e{i}", f"/svc{i}/status", mode="new"),
            _route(f"p{i}", f"/svc{i}/items/{{id}}", **canary),
            _route(f"s{i}", f"/svc{i}/files/**", **canary),
            _route(f"m{i}", f"/svc{i}/orders/**", methods=["GET"]),
            _route(f"h{i}", f"/svc{i}/h/{{x}}/y", headers={"X-Tenant": "acme"}),
        ]
    config = parse_config({"legacy": "monolith", "upstreams": UPSTREAMS, "routes": routes})
    return RouteTable.build(config)


CASES = {
    "exact": "/svc1/status",
    "param": "/svc1/items/42",
    "subtree": "/svc1/files/a/b/c.txt",
    "unmatched": "/static/app.js",
    "needs normalising": "/svc1//items/./42",
}


def per_call(t: RouteTable, path: str, n: int) -> float:
    headers = {"x-user-id": "user-1234", "host": "example.com", "accept": "*/*"}
    # CPU time, not wall time: the bench machine is shared, and waiting for a core
    # is not a cost of matching.
    start = time.process_time()
    for _ in range(n):
        decide(t, "GET", path, headers, "10.0.0.1")
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    small, big = table(2), table(2000)
    assert len(small.routes) == 10 and len(big.routes) == 10_000
    print(f"python {platform.python_version()} on {platform.machine()}, {args.rounds} rounds")
    print(f"{'case':<20} {'10 routes (us)':>15} {'10,000 routes (us)':>19}")
    # decide() = normalise + match + sticky bucket (canary routes) + the Decision value
    for name, path in CASES.items():
        # Interleaved rounds so both tables see the same noise; min because noise
        # only ever adds time.
        a, b = float("inf"), float("inf")
        for _ in range(args.rounds):
            a = min(a, per_call(small, path, args.n))
            b = min(b, per_call(big, path, args.n))
        print(f"{name:<20} {a:>15.2f} {b:>19.2f}")


if __name__ == "__main__":
    main()
