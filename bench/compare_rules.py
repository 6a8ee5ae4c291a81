"""Cost of the comparison rules (issue 13): the 25-field document and key-aligned lists.

Run: python3 bench/compare_rules.py [--rounds 3000] [--baseline 2ebba69]

1. The 25-field document of ``bench/compare_diff.py`` (two changed values, an
   ignore path, a tolerance, an unordered list), compared by the comparator as
   it was at ``--baseline`` (loaded from git, same process, same run) and by
   today's, then by today's with the new rules on top (``null`` = ``""`` =
   absent at any depth, numeric strings for ids, timestamps as instants,
   ``match_by`` on the items). Target: ≤ 300 µs.
2. ``match_by`` on two 100-item lists (8 fields each): one item missing, one
   changed, the order reversed. Target: ≤ 2 ms.

Rounds alternate between the variants; the median of 5 alternations is printed.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from strangler.config import CompareConfig
from strangler.message import make_headers
from strangler.shadow.compare import Comparator
from strangler.shadow.observation import Observation

ROOT = Path(__file__).resolve().parents[1]
HEADERS = make_headers({"Content-Type": "application/json"})


def observe(side: Any, body: Any) -> Observation:
    return Observation(side, side, 200, HEADERS, json.dumps(body).encode())


def baseline_comparator(commit: str) -> Any:
    """The Comparator class as it was at ``commit`` (loaded from git into this process)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:strangler/shadow/compare.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "compare_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("compare_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_baseline"] = module
    spec.loader.exec_module(module)
    return module.Comparator


def document() -> dict[str, Any]:
    """The document of ``bench/compare_diff.py`` (25 fields, a 20-item list)."""
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


def alternate(variants: dict[str, Any], rounds: int, runs: int = 5) -> dict[str, float]:
    seen: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            seen[name].append(per_call(fn, rounds))
    return {name: statistics.median(values) for name, values in seen.items()}


def lists(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    items = [
        {
            "id": i,
            "slug": f"article-{i}",
            "title": f"Title {i}",
            "author": {"username": f"u{i % 7}", "bio": None},
            "tags": ["a", "b"],
            "favorites": i * 3,
            "createdAt": f"2026-11-01T10:00:{i % 60:02d}.123456Z",
            "published": True,
        }
        for i in range(n)
    ]
    new = copy.deepcopy(items)
    del new[40]
    new[10]["title"] = "changed"
    new.reverse()
    return {"articles": items}, {"articles": new}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--baseline", default="2ebba69")
    args = parser.parse_args()

    a = document()
    b = copy.deepcopy(a)
    b["items"][3]["qty"] = 7
    b["name"] = "Bob"
    left, right = observe("legacy", a), observe("new", b)
    old_rules = CompareConfig(
        ignore=("body.items[*].id",), tolerance=0.001, unordered=("body.tags",)
    )
    new_rules = CompareConfig(
        ignore=("body.items[*].id",),
        tolerance=0.001,
        unordered=("body.tags",),
        match_by={"body.items": "sku"},
        rules=(
            {"path": "body.**", "equal": [None, "", "absent"]},
            {"path": "body.**.id", "numeric_strings": True},
            {"path": "body.**.updated_at", "timestamp": {"precision": "ms"}},
        ),
    )
    before = baseline_comparator(args.baseline)(old_rules)
    today, ruled = Comparator(old_rules), Comparator(new_rules)
    for comparator in (before, today, ruled):
        assert comparator.compare(left, right).outcome == "mismatch"

    la, lb = lists(100)
    list_left, list_right = observe("legacy", la), observe("new", lb)
    keyed = Comparator(
        CompareConfig(
            match_by={"body.articles": "slug"},
            rules=({"path": "body.**", "equal": [None, ""]},),
        )
    )
    found = keyed.compare(list_left, list_right).differences
    assert {d.kind for d in found} == {"missing", "value", "order"}, found

    doc = alternate(
        {
            "before": lambda: before.compare(left, right),
            "today": lambda: today.compare(left, right),
            "rules": lambda: ruled.compare(left, right),
        },
        args.rounds,
    )
    keyed_us = alternate(
        {"keyed": lambda: keyed.compare(list_left, list_right)}, max(50, args.rounds // 20)
    )["keyed"]
    load = Path("/proc/loadavg").read_text().split()[0]
    rows = [
        (f"25-field document, comparator at {args.baseline}", doc["before"], "(248 before)"),
        ("25-field document, today, same rules", doc["today"], "≤ 300"),
        ("25-field document, today + equal/numeric/timestamp/match_by", doc["rules"], "≤ 300"),
        ("match_by, two 100-item lists (1 missing, 1 changed, reversed)", keyed_us, "≤ 2,000"),
    ]
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} UTC, load average {load}")
    print("| comparison | µs per call (median of 5 alternations) | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value:.0f} | {target} |")


if __name__ == "__main__":
    main()
