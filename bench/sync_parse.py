"""Per-event CPU of the CDC worker's Python, without a database: compiled vs pure.

Times, over N realistic Debezium JSON records of ``pgbench_accounts`` updates (JSON
converter, schemas disabled, as bytes with their key, like Kafka hands them over):

- ``parse``: ``parse_envelope`` (JSON, the row, the key, the position) -> ChangeEvent;
- ``map``: ``map_event`` through a ``DeclarativeAdapter`` renaming three columns and
  leaving one out -> RowUpsert;
- ``plan``: ``key_text`` of each write and ``PendingWrites.add`` (what the sink does
  per write before its SQL).

Each round runs once per build, each in its own process (the build is chosen at
import: ``STRANGLER_PURE=1`` for the pure one), alternating which goes first; the
table is the median per stage in µs of CPU time per event (``time.process_time``:
other load on the machine counts less than in wall time). Needs a compiled build in the checkout
(``python setup.py build_ext --inplace``).

    flock /work/wt/bench.lock python bench/sync_parse.py [--events 50000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def records(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        aid = i % 100_000 + 1
        lsn = 30_000_000 + i * 312
        value = {
            "before": None,
            "after": {"aid": aid, "bid": aid // 100_000 + 1, "abalance": (i * 37) % 5000 - 2500,
                      "filler": " " * 84},
            "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "mono",
                       "ts_ms": 1_765_000_000_000 + i, "snapshot": "false", "db": "bench",
                       "sequence": f'["{lsn - 312}","{lsn}"]', "ts_us": 1_765_000_000_000_000,
                       "ts_ns": 1_765_000_000_000_000_000, "schema": "public",
                       "table": "pgbench_accounts", "txId": 900 + i, "lsn": lsn, "xmin": None},
            "transaction": None,
            "op": "u",
            "ts_ms": 1_765_000_000_100 + i,
        }  # fmt: skip
        out.append((json.dumps(value).encode(), json.dumps({"aid": aid}).encode()))
    return out


def child(n: int) -> None:
    """One round in this process's build: print the stages' µs per event as JSON."""
    from strangler import build
    from strangler.sync.adapters import DeclarativeAdapter, map_event
    from strangler.sync.codec import key_text
    from strangler.sync.envelope import parse_envelope
    from strangler.sync.writer import PendingWrites
    from strangler.sync_config import ColumnMap

    data = records(n)
    adapter = DeclarativeAdapter([ColumnMap(
        table="accounts", key=("account_id",), exclude=("filler",),
        rename={"aid": "account_id", "bid": "branch_id", "abalance": "balance"},
    )])  # fmt: skip
    start = time.process_time()
    events = [parse_envelope(value, key, source="mono") for value, key in data]
    parsed = time.process_time()
    mapped = [map_event(adapter, event) for event in events if event is not None]
    done_map = time.process_time()
    pending = PendingWrites()
    for event, writes in zip(events, mapped, strict=True):
        assert event is not None
        for write in writes:
            pending.add(write, key_text(write.key), event.position, event.table)
    planned = time.process_time()
    per = 1e6 / n
    print(json.dumps({
        "build": build.DESCRIPTION,
        "parse": (parsed - start) * per,
        "map": (done_map - parsed) * per,
        "plan": (planned - done_map) * per,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.events)
        return
    results: dict[str, list[dict[str, float]]] = {"compiled": [], "pure": []}
    names: dict[str, str] = {}
    for round_ in range(args.rounds):
        order = ["compiled", "pure"] if round_ % 2 == 0 else ["pure", "compiled"]
        for which in order:
            env = {**os.environ, "STRANGLER_PURE": "1" if which == "pure" else ""}
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--events", str(args.events)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(done.stdout)
            names[which] = result.pop("build")
            results[which].append(result)
    print(f"builds: {names['compiled']}; {names['pure']}")
    print(f"{args.events} events, {args.rounds} rounds, median CPU µs per event")
    print(f"{'stage':<8}{'compiled':>10}{'pure':>10}{'speed-up':>10}")
    for stage in ("parse", "map", "plan"):
        fast = statistics.median(r[stage] for r in results["compiled"])
        slow = statistics.median(r[stage] for r in results["pure"])
        print(f"{stage:<8}{fast:>10.2f}{slow:>10.2f}{slow / fast:>9.2f}x")
    fast = statistics.median(sum(r.values()) for r in results["compiled"])
    slow = statistics.median(sum(r.values()) for r in results["pure"])
    print(f"{'total':<8}{fast:>10.2f}{slow:>10.2f}{slow / fast:>9.2f}x")


if __name__ == "__main__":
    main()
