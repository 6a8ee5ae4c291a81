"""The worker's CPU per change on pgbench's changes, without pgbench: decode and apply.

Builds the ``pgoutput`` messages of TPC-B transactions (an update of an account, a
teller and a branch each) as PostgreSQL's protocol 1 lays them out, decodes them with
the ``pgoutput`` source's decoder and applies them through ``Sink.apply`` in batches of
``--batch`` into a real PostgreSQL (the bench's service tables, renamed columns, 100,000
accounts), one transaction per batch as the worker does. Prints the CPU per change of
the decoder and of the sink (this thread's ``thread_time``) and of the target's
backend (``/proc``), per round after a warm-up round; read the median.

It isolates the worker's own code from pgbench and the walsender, so a change to the
decoder or the sink shows in a minute, in microseconds per change; whether the whole
keeps up is ``sync_pgbench.py``'s question. The GC is set as the worker sets it.

    python bench/sync_sink_cpu.py [--changes 60000] [--batch 300] [--rounds 3]
                                  [--url postgresql://postgres@127.0.0.1:5432/postgres]

Creates and drops a throwaway database ``strangler_bench_<random>``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import secrets
import statistics
import struct
import sys
import time

import psycopg

from strangler import build
from strangler.sync.adapters import AdapterSet
from strangler.sync.sink import Sink
from strangler.sync.sources.pgoutput_decode import Decoder
from strangler.sync.worker import GC_YOUNG
from strangler.sync_config import SyncConfig

FILLER = b" " * 84


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def relation(relid: int, table: str, columns: list[tuple[str, int, bool]]) -> bytes:
    body = b"R" + struct.pack(">I", relid) + _s("public") + _s(table) + b"d"
    body += struct.pack(">h", len(columns))
    for name, oid, key in columns:
        body += bytes([1 if key else 0]) + _s(name) + struct.pack(">Ii", oid, -1)
    return body


def row(*values: bytes | None) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        out += b"n" if value is None else b"t" + struct.pack(">i", len(value)) + value
    return out


RELATIONS = [
    relation(1, "pgbench_accounts", [("aid", 23, True), ("bid", 23, False),
                                     ("abalance", 23, False), ("filler", 1042, False)]),
    relation(2, "pgbench_tellers", [("tid", 23, True), ("bid", 23, False),
                                    ("tbalance", 23, False), ("filler", 1042, False)]),
    relation(3, "pgbench_branches", [("bid", 23, True), ("bbalance", 23, False),
                                     ("filler", 1042, False)]),
]  # fmt: skip


def transactions(count: int, lsn: int, rnd: random.Random) -> list[tuple[int, bytes]]:
    """``count`` TPC-B transactions' messages (what the walsender sends for them)."""
    out: list[tuple[int, bytes]] = []
    for t in range(count):
        commit = lsn + 400
        delta = [str(rnd.randint(-5000, 5000)).encode() for _ in range(3)]
        out.append((lsn, b"B" + struct.pack(">QqI", commit, 1_000_000 + t, 1000 + t)))
        aid, tid = str(rnd.randint(1, 100_000)).encode(), str(rnd.randint(1, 10)).encode()
        for n, (relid, values) in enumerate(
            (
                (1, row(aid, b"1", delta[0], FILLER)),
                (2, row(tid, b"1", delta[1], None)),
                (3, row(b"1", delta[2], None)),
            ),
            start=1,
        ):
            out.append((lsn + 100 * n, b"U" + struct.pack(">I", relid) + b"N" + values))
        out.append((commit, b"C" + struct.pack(">BQQq", 0, commit, commit + 50, 1_000_000 + t)))
        lsn = commit + 100
    return out  # fmt: skip


def config(url: str) -> SyncConfig:
    tables = []
    for source, target, key, renames in (
        ("pgbench_accounts", "accounts", "aid", {"bid": "branch", "abalance": "balance"}),
        ("pgbench_tellers", "tellers", "tid", {"bid": "branch", "tbalance": "balance"}),
        ("pgbench_branches", "branches", "bid", {"bbalance": "balance"}),
    ):
        tables.append({"source": f"public.{source}", "target": "svc", "adapter": {
            "table": target, "key": ["id"], "rename": {key: "id", **renames}}})  # fmt: skip
    return SyncConfig.model_validate({
        "sources": [{"name": "bench", "kind": "sqlite",
                     "options": {"database": "unused.db", "tables": ["public.pgbench_accounts"]}}],
        "targets": {"svc": url},
        "tables": tables,
    })  # fmt: skip


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"strangler_bench_{secrets.token_hex(4)}"
    base = args.url.rsplit("/", 1)[0]
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
            for table in ("accounts", "tellers"):
                conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, branch int,"
                             " balance int, filler char(84))")  # fmt: skip
            conn.execute("CREATE TABLE branches (id int PRIMARY KEY, balance int, filler char(88))")
            for table, rows in (("accounts", 100_000), ("tellers", 10)):
                conn.execute(
                    f"INSERT INTO {table} SELECT g, 1, 0, '' FROM generate_series(1, {rows}) g"
                )
            conn.execute("INSERT INTO branches VALUES (1, 0, '')")
        url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
        result = run(url, args)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if "compiled" not in build.DESCRIPTION:
        print(f"warning: pure Python ({build.DESCRIPTION})", file=sys.stderr)
    print(json.dumps({"build": build.DESCRIPTION, **result}, indent=1))


def run(url: str, args: argparse.Namespace) -> dict[str, object]:
    sink = Sink("svc", url, AdapterSet(config(url)), exclusive=["accounts", "tellers", "branches"])
    sink.setup()
    with sink.engine.connect() as conn:
        backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    rnd = random.Random(7)
    lsn = 1 << 32
    rounds: dict[str, list[float]] = {"decode": [], "sink": [], "target_backend": []}
    for i in range(args.rounds + 1):
        messages = transactions(args.changes // 3, lsn, rnd)
        lsn = messages[-1][0] + 1000
        decoder = Decoder("bench", {})
        for message in RELATIONS:
            decoder.decode(lsn, message)
        started = time.thread_time()
        for at, message in messages:
            decoder.decode(at, message)
        decoded = time.thread_time()
        events = decoder.events
        backend_before = backend_cpu(backend)
        applying = time.thread_time()
        for start in range(0, len(events), args.batch):
            chunk = events[start : start + args.batch]
            sink.apply("bench", chunk, {"pos": chunk[-1].position.commit})
        applied = time.thread_time()
        backend_after = backend_cpu(backend)
        if i == 0:
            continue  # warm-up: reflection, first plans
        n = len(events)
        rounds["decode"].append((decoded - started) / n * 1e6)
        rounds["sink"].append((applied - applying) / n * 1e6)
        rounds["target_backend"].append((backend_after - backend_before) / n * 1e6)
    sink.close()
    return {
        "batch": args.batch,
        "changes_per_round": args.changes,
        "us_per_change_median": {k: round(statistics.median(v), 2) for k, v in rounds.items()},
        "us_per_change_rounds": {k: [round(x, 2) for x in v] for k, v in rounds.items()},
    }


if __name__ == "__main__":
    main()
