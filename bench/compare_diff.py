"""Why strangler's own JSON walker and not deepdiff: cost per comparison.

Run: python3 bench/compare_diff.py [--rounds 2000]. Compares one realistic
customer document (25 fields, a 20-item array) against a copy with two changed
values, with an ignore path and a numeric tolerance, using DeepDiff and
strangler's Comparator (which also parses, normalises and builds typed
differences). Prints microseconds per comparison.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from typing import Any

from deepdiff import DeepDiff

from strangler.config import CompareConfig
from strangler.message import make_headers
from strangler.shadow.compare import Comparator
from strangler.shadow.observation import Observation


def document() -> dict[str, Any]:
    return {
        "id": 1,
        "name": "Ada",
        "email": "ada@example.com",
        "updated_at": "2026-01-01T00:00:00Z",
        "tags": ["a", "b", "c"],
        "address": {"street": "1 Main", "city": "X", "zip": "123"},
        "items": [{"id": i, "sku": f"S{i}", "qty": i * 2, "price": i * 1.5} for i in range(20)],
    }


def per_call(fn: Any, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    a = document()
    b = copy.deepcopy(a)
    b["items"][3]["qty"] = 7
    b["name"] = "Bob"
    headers = make_headers({"Content-Type": "application/json"})
    left = Observation("legacy", "monolith", 200, headers, json.dumps(a).encode())
    right = Observation("new", "customers", 200, headers, json.dumps(b).encode())
    comparator = Comparator(
        CompareConfig(ignore=("body.items[*].id",), tolerance=0.001, unordered=("body.tags",))
    )
    assert comparator.compare(left, right).outcome == "mismatch"
    exclude = [r"root\['items'\]\[\d+\]\['id'\]"]
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| comparison of one 25-field document | µs per call |")
    print("|---|---|")
    dd = per_call(lambda: DeepDiff(a, b, exclude_regex_paths=exclude, math_epsilon=0.001), rounds)
    print(f"| DeepDiff (ordered, exclude path, epsilon) | {dd:.0f} |")
    ddo = per_call(lambda: DeepDiff(a, b, ignore_order=True), rounds // 4)
    print(f"| DeepDiff (ignore_order=True) | {ddo:.0f} |")
    ours = per_call(lambda: comparator.compare(left, right), rounds)
    print(f"| strangler Comparator (parse both bodies + normalise + diff) | {ours:.0f} |")
    same = per_call(lambda: comparator.compare(left, left), rounds)
    print(f"| strangler Comparator, identical bodies (the common case) | {same:.1f} |")


if __name__ == "__main__":
    main()
