"""``verify`` at size: rows/s and peak memory, with the memory curve, at N rows.

Builds a pgbench_accounts-shaped source table (aid PK, bid, abalance, filler
char(84)) and the service's copy with renamed columns (id, branch, balance, filler)
in two throwaway databases on 127.0.0.1:5432, both with ``generate_series`` (built
once per size, reused while the databases exist), then runs ``Verifier`` in a child
process that samples its own RSS every 0.2 s. Prints rows/s, peak RSS and the curve
(RSS at each 10% of the run) as JSON.

    python bench/verify_scale.py --rows 1000000 [--rows 10000000] [--path sql --path rows]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg

PG = "postgresql://postgres@127.0.0.1:5432/{db}"


def ensure(rows: int) -> tuple[str, str]:
    source_db, target_db = f"bench_verify_src_{rows}", f"bench_verify_dst_{rows}"
    with psycopg.connect(PG.format(db="postgres"), autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for db in (source_db, target_db):
            if db not in have:
                conn.execute(f'CREATE DATABASE "{db}"')
    build = [
        (source_db, "CREATE TABLE IF NOT EXISTS pgbench_accounts (aid int PRIMARY KEY,"
                    " bid int, abalance int, filler char(84))",
         "INSERT INTO pgbench_accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM"
         " generate_series(1, %s) g"),
        (target_db, "CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, branch int,"
                    " balance int, filler char(84))",
         "INSERT INTO accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM"
         " generate_series(1, %s) g"),
    ]  # fmt: skip
    for db, ddl, fill in build:
        with psycopg.connect(PG.format(db=db), autocommit=True) as conn:
            conn.execute(ddl)
            table = "pgbench_accounts" if "src" in db else "accounts"
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            if not count or count[0] != rows:
                conn.execute(f"TRUNCATE {table}")
                conn.execute(fill, (rows,))  # type: ignore[arg-type]
                conn.execute(f"VACUUM ANALYZE {table}")
    return PG.format(db=source_db), PG.format(db=target_db)


def child(source: str, target: str, path: str) -> None:
    """Runs in the measured process: verify, sampling RSS."""
    from strangler.sync.verify import Verifier
    from strangler.sync_config import SyncConfig

    config = SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "kafka", "monolith": source,
                     "options": {"bootstrap_servers": "127.0.0.1:9", "topics": ["x"]}}],
        "targets": {"svc": target.replace("postgresql://", "postgresql+psycopg://")},
        "tables": [{"source": "public.pgbench_accounts", "target": "svc", "adapter": {
            "table": "accounts", "key": ["id"],
            "rename": {"aid": "id", "bid": "branch", "abalance": "balance"},
            # A cast keeps the key's order but stops the SQL checksums: row by row.
            **({"cast": {"balance": "int"}} if path == "rows" else {})}}],
    })  # fmt: skip
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    page = os.sysconf("SC_PAGE_SIZE")

    def sample() -> None:
        while not done.is_set():
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            samples.append((time.perf_counter(), rss))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    report = Verifier(config).run(lag_window=0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    curve = []
    for tenth in range(1, 11):
        moment = start + seconds * tenth / 10
        before = [rss for t, rss in samples if t <= moment]
        curve.append(round((before[-1] if before else 0) / 2**20, 1))
    print(json.dumps({"compared": report.compared, "drift": len(report.drift),
                      "seconds": round(seconds, 2),
                      "rows_per_s": round(report.compared / seconds),
                      "peak_rss_mb": round(peak / 2**20, 1), "rss_curve_mb": curve}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--child", nargs=3)
    parser.add_argument(
        "--path",
        choices=["sql", "rows"],
        action="append",
        help="sql: checksums in PostgreSQL (default); rows: row by row",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases for reruns")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus"}
    for rows in args.rows or [1_000_000]:
        source, target = ensure(rows)
        for path in args.path or ["sql"]:
            out = subprocess.run([sys.executable, __file__, "--child", source, target, path],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            results[f"{rows} {path}"] = json.loads(out.stdout.strip().splitlines()[-1])
            print(rows, path, results[f"{rows} {path}"], flush=True)
        if not args.keep:
            with psycopg.connect(PG.format(db="postgres"), autocommit=True) as conn:
                for db in (f"bench_verify_src_{rows}", f"bench_verify_dst_{rows}"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(json.dumps(results))


if __name__ == "__main__":
    main()
