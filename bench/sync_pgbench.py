"""pgbench through CDC, side by side with PostgreSQL's native logical replication.

One throwaway logical PostgreSQL cluster (``localstack``) holds the monolith (pgbench's
tables, scale ``--scale``), ``native`` (same tables, fed by a native subscription) and
``service`` (renamed columns, fed by ``strangler sync`` with the ``pgoutput`` source, or
``--source debezium``, and ``snapshot: bulk``). pgbench_history has no key and is
captured by neither. Phases:

1. pgbench alone (``--seconds``, ``--clients``): tps without capture.
2. initial copy: native (CREATE SUBSCRIPTION ... copy_data) until every table is ready;
   strangler (the bulk load) until every chunk is done; rows/s and the worker's peak RSS.
3. streaming under pgbench, one at a time (the other paused): tps while capturing,
   changes applied per second (3 row changes per TPC-B transaction), lag p50/p99
   sampled every 0.25 s (native: pg_stat_replication.replay_lag of its walsender;
   strangler: /api/sync lag_seconds, the heartbeat's), the time to drain after, and the
   CPU seconds per kind of thread or process while pgbench ran (``cpu_s``).
   First at pgbench's full speed (each side then gets the load its own capture leaves
   pgbench able to make), then at each ``--rates`` (``pgbench -R``): the same offered
   load for both, where the question is whether each keeps up and at what lag.
4. the per-row bookkeeping's size in the service (bytes per synced row, per position
   entry) after the load and after streaming.
5. with ``--rounds N``: N-1 more full-speed rounds per side, alternated (the side not
   measured paused: the worker stopped, the subscription disabled); the apply-rate
   ratio of each pair and their median (the machine's own speed drifts by 20% between
   minutes: one round per side cannot be read to a few percent).

Prints a JSON document; the machine is shared, so read the ratios, not the absolutes.

    python bench/sync_pgbench.py [--scale 10] [--seconds 30] [--clients 4] [--rates 500,1000]
                                 [--rounds 1] [--source pgoutput|debezium]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from cpu_split import CpuSplit

from strangler.devstack.localstack import LogicalPostgres, free_port

REPO = Path(__file__).resolve().parents[1]
SPLIT = CpuSplit()
"""CPU per kind of thread or process during each pgbench phase (``cpu_split.py``)."""
TABLES = ("pgbench_accounts", "pgbench_tellers", "pgbench_branches")
SERVICE_DDL = (
    "CREATE TABLE accounts (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE tellers (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE branches (id int PRIMARY KEY, balance int, filler char(88))",
)


def build() -> str:
    """The worker's build, as ``strangler --version`` says (a source edited after the
    compiled build makes every module pure: a figure then measures the wrong thing)."""
    said = subprocess.run([sys.executable, "-m", "strangler", "--version"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if "compiled" not in said:
        print(f"warning: the worker runs pure Python ({said}); rebuild: pip install -e .",
              file=sys.stderr)  # fmt: skip
    return said


def pgbench(pg: LogicalPostgres, *args: str) -> str:
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres"}
    done = subprocess.run(["pgbench", *args, "monolith"], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout + done.stderr


def tps(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise RuntimeError(output)


def sql(pg: LogicalPostgres, db: str, *statements: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            out = cur.fetchall() if cur.description else []
    return out


class Rss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return
            self.stop.wait(0.1)


def routes(pg: LogicalPostgres, port: int, kind: str = "pgoutput") -> str:
    return f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{port}
  sources:
    - name: bench
      kind: {kind}
      options:
        database: "{pg.url("monolith", driver="postgresql")}"
        tables: [{", ".join(f"public.{t}" for t in TABLES)}]
        slot: strangler_bench
        snapshot: bulk
  targets: {{svc: "{pg.url("service")}"}}
  tables:
    - {{source: public.pgbench_accounts, target: svc, adapter: {{table: accounts, key: [id],
        rename: {{aid: id, bid: branch, abalance: balance}}}}}}
    - {{source: public.pgbench_tellers, target: svc, adapter: {{table: tellers, key: [id],
        rename: {{tid: id, bid: branch, tbalance: balance}}}}}}
    - {{source: public.pgbench_branches, target: svc, adapter: {{table: branches, key: [id],
        rename: {{bid: id, bbalance: balance}}}}}}
"""


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sync", timeout=30) as answer:
        found: dict[str, Any] = json.load(answer)["sources"][0]
        return found


def native_lag(pg: LogicalPostgres) -> float | None:
    rows = sql(pg, "monolith", "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication"
                               " WHERE application_name = 'native_sub'")  # fmt: skip
    return float(rows[0][0]) if rows and rows[0][0] is not None else 0.0


def stream(
    pg: LogicalPostgres, seconds: int, clients: int, lag: Any, rate: int = 0
) -> dict[str, Any]:
    """pgbench for ``seconds`` (``rate``: transactions/s, 0 = as fast as it goes) while
    ``lag()`` is sampled; then until lag is back near 0."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            value = lag()
            if value is not None:
                samples.append(value)
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    limit = ["-R", str(rate)] if rate else []
    mark = SPLIT.mark()
    out = pgbench(pg, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), *limit)
    cpu = SPLIT.since(mark)
    stop.set()
    sampler.join()
    made = tps(out)
    samples.sort()
    return {
        "tps": made,
        "cpu_s": cpu,
        "changes_per_s_produced": round(made * 3),
        "lag_p50_s": round(statistics.median(samples), 3) if samples else None,
        "lag_p99_s": round(samples[int(len(samples) * 0.99) - 1], 3) if samples else None,
        "lag_max_s": round(samples[-1], 3) if samples else None,
    }


def native_caught_up(pg: LogicalPostgres) -> None:
    """Wait until the native subscription has replayed the WAL written so far."""
    end = sql(pg, "monolith", "SELECT pg_current_wal_lsn()")[0][0]
    caught = (
        f"SELECT coalesce(bool_and(replay_lsn >= '{end}'::pg_lsn), false)"
        " FROM pg_stat_replication WHERE application_name = 'native_sub'"
    )
    while not sql(pg, "monolith", caught)[0][0]:
        time.sleep(0.05)


def native_phase(pg: LogicalPostgres, args: argparse.Namespace, rate: int) -> dict[str, Any]:
    t0 = time.monotonic()
    native = stream(pg, args.seconds, args.clients, lambda: native_lag(pg), rate)
    native_caught_up(pg)
    native["drain_s"] = round(time.monotonic() - t0 - args.seconds, 2)
    native["changes_per_s_applied"] = round(
        native["tps"] * 3 * args.seconds / (time.monotonic() - t0)
    )
    return native


def strangler_caught_up(port: int, deadline: float) -> None:
    """Wait until the worker says it is caught up (a worker just started may not be
    listening yet), or until ``deadline``."""
    while time.monotonic() < deadline:
        try:
            if status(port).get("caught_up"):
                return
        except OSError:
            pass
        time.sleep(0.25)


def strangler_phase(
    pg: LogicalPostgres, args: argparse.Namespace, port: int, rate: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    strangler_caught_up(port, deadline)
    applied_before = status(port)["applied"]
    t0 = time.monotonic()
    streaming = stream(pg, args.seconds, args.clients,
                       lambda: status(port).get("lag_seconds"), rate)  # fmt: skip
    if args.source == "pgoutput":
        # As for native: done when the slot is confirmed past the WAL's end (the source
        # confirms only what the target committed).
        end = sql(pg, "monolith", "SELECT pg_current_wal_lsn()")[0][0]
        caught = (
            f"SELECT coalesce(bool_and(confirmed_flush_lsn >= '{end}'::pg_lsn), false)"
            " FROM pg_replication_slots WHERE slot_name = 'strangler_bench'"
        )
        while not sql(pg, "monolith", caught)[0][0] and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        # Debezium confirms the slot only when it saves its offsets: wait for a
        # heartbeat written after pgbench's last commit instead.
        time.sleep(1.5)
        while not status(port).get("caught_up") and time.monotonic() < deadline:
            time.sleep(0.1)
    elapsed = time.monotonic() - t0
    applied = status(port)["applied"] - applied_before
    streaming["drain_s"] = round(elapsed - args.seconds, 2)
    streaming["changes_applied"] = applied
    streaming["changes_per_s_applied"] = round(applied / elapsed)
    return streaming


BOOKKEEPING = (
    "strangler_positions",
    "strangler_row_tables",
    "strangler_loaded_ranges",
    "strangler_initial_loads",
    "strangler_row_positions",
)  # the last: old layout


def bookkeeping(pg: LogicalPostgres, rows: int) -> dict[str, Any]:
    """Bytes of the per-row bookkeeping in the service (pg_total_relation_size: heap,
    indexes, TOAST), per synced row and per stored position entry."""
    size = sql(pg, "service", "SELECT coalesce(sum(pg_total_relation_size(c)), 0)"
                              f" FROM unnest(ARRAY{list(BOOKKEEPING)}) c"
                              " WHERE to_regclass(c) IS NOT NULL")[0][0]  # fmt: skip
    entries = 0
    for table in ("strangler_positions", "strangler_row_positions"):
        if sql(pg, "service", f"SELECT to_regclass('{table}') IS NOT NULL")[0][0]:
            entries += sql(pg, "service", f"SELECT count(*) FROM {table}")[0][0]
    data = sql(pg, "service", "SELECT sum(pg_total_relation_size(c)) FROM unnest("
                              "ARRAY['accounts', 'tellers', 'branches']) c")[0][0]  # fmt: skip
    return {
        "bytes": int(size),
        "bytes_per_row": round(int(size) / rows, 1),
        "entries": entries,
        "bytes_per_entry": round(int(size) / entries, 1) if entries else None,
        "data_bytes": int(data),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--rates",
        type=lambda text: [int(r) for r in text.split(",") if r],
        default=[],
        help="also stream at these fixed pgbench rates (transactions/s, comma-separated):"
        " the same offered load for both, each kept up with or not",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="full-speed rounds per side, alternated (native, strangler, native, ...; the"
        " side not measured is paused): the ratio reported is the median of the rounds'",
    )
    parser.add_argument(
        "--source",
        choices=("pgoutput", "debezium"),
        default="pgoutput",
        help="strangler's source kind: the worker reading the slot itself, or Debezium embedded",
    )
    args = parser.parse_args()
    result: dict[str, Any] = {
        "source": args.source,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}",
        "build": build(),
        "scale": args.scale,
    }
    with LogicalPostgres(databases=("monolith", "native", "service")) as pg:
        # The throwaway cluster commits asynchronously (fsync is off anyway); then the
        # WAL writer flushes every 200 ms and logical decoding, which reads flushed WAL
        # only, sees each commit up to 200 ms late. Native's replay_lag does not count
        # that wait and the heartbeat does, so commit synchronously (as production does;
        # a database's setting wins over the server's command line).
        sql(pg, "monolith", "ALTER DATABASE monolith SET synchronous_commit = on")
        pgbench(pg, "-i", "-s", str(args.scale), "-I", "dtgvp", "-q")
        rows = sum(sql(pg, "monolith", f"SELECT count(*) FROM {t}")[0][0] for t in TABLES)
        result["rows"] = rows
        alone = pgbench(pg, "-n", "-c", str(args.clients), "-j", "2", "-T", str(args.seconds))
        result["pgbench_alone"] = {"tps": tps(alone)}

        # ---- native: initial copy
        with psycopg.connect(pg.dsn("monolith"), autocommit=True) as conn:
            ddl = [
                r[0]
                for r in conn.execute(
                    "SELECT 'CREATE TABLE ' || c.relname || ' (' || string_agg(a.attname || ' ' ||"
                    " format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) || ')'"
                    " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
                    " WHERE c.relname = ANY(%s) GROUP BY c.relname",
                    (list(TABLES),),
                ).fetchall()
            ]
            conn.execute(f"CREATE PUBLICATION native_pub FOR TABLE {', '.join(TABLES)}")
            conn.execute("SELECT pg_create_logical_replication_slot('native_sub', 'pgoutput')")
        keys = {"pgbench_accounts": "aid", "pgbench_tellers": "tid", "pgbench_branches": "bid"}
        sql(pg, "native", *ddl,
            *[f"ALTER TABLE {t} ADD PRIMARY KEY ({k})" for t, k in keys.items()])  # fmt: skip
        started = time.monotonic()
        sql(
            pg,
            "native",
            f"CREATE SUBSCRIPTION native_sub CONNECTION 'host=127.0.0.1"
            f" port={pg.port} user=postgres dbname=monolith' PUBLICATION"
            " native_pub WITH (create_slot = false, slot_name = 'native_sub')",
        )
        while sql(pg, "native", "SELECT count(*) FROM pg_subscription_rel"
                                " WHERE srsubstate <> 'r'")[0][0]:  # fmt: skip
            time.sleep(0.05)
        native_copy = time.monotonic() - started
        result["native_initial"] = {"seconds": round(native_copy, 2),
                                    "rows_per_s": round(rows / native_copy)}  # fmt: skip

        # ---- native: streaming under pgbench, full speed then at each fixed rate
        result["native_streaming"] = native_phase(pg, args, 0)
        for rate in args.rates:
            result[f"native_at_{rate}_tps"] = native_phase(pg, args, rate)
        sql(pg, "native", "ALTER SUBSCRIPTION native_sub DISABLE")

        # ---- strangler: initial (bulk) load
        sql(pg, "service", *SERVICE_DDL)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "routes.yaml"
            config.write_text(routes(pg, port, args.source))
            log = (Path(tmp) / "worker.log").open("wb")

            def start_worker() -> subprocess.Popen[bytes]:
                command = [sys.executable, "-m", "strangler", "sync", "-c", str(config)]
                return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log)

            started = time.monotonic()
            worker = start_worker()
            rss = Rss(worker.pid)
            rss.start()
            SPLIT.worker_pid = worker.pid
            try:
                # The load is done when every planned chunk is (the JVM starts after it).
                done = (
                    "SELECT count(*) > 0 AND bool_and(done) FROM strangler_initial_loads"
                    " WHERE to_regclass('strangler_initial_loads') IS NOT NULL"
                )
                while True:
                    try:
                        finished = sql(pg, "service", done)[0][0]
                    except psycopg.Error:
                        finished = False
                    if finished:
                        break
                    time.sleep(0.05)
                load_seconds = time.monotonic() - started
                load_peak = rss.peak
                result["strangler_initial"] = {
                    "seconds": round(load_seconds, 2),
                    "rows_per_s": round(rows / load_seconds),
                    "peak_rss_mb_during_load": round(load_peak / 2**20),
                    "ratio_to_native": round(native_copy / load_seconds, 3),
                }
                sql(pg, "service", "VACUUM ANALYZE")  # sizes without dead tuples
                result["bookkeeping_after_load"] = bookkeeping(pg, rows)
                # Wait until streaming runs and is caught up.
                deadline = time.monotonic() + 300
                while not status(port).get("caught_up") and time.monotonic() < deadline:
                    time.sleep(0.25)
                streaming = strangler_phase(pg, args, port, 0)
                streaming["peak_rss_mb"] = round(rss.peak / 2**20)
                result["strangler_streaming"] = streaming
                for rate in args.rates:
                    result[f"strangler_at_{rate}_tps"] = strangler_phase(pg, args, port, rate)
                sql(pg, "service", "VACUUM ANALYZE")
                result["bookkeeping_after_streaming"] = bookkeeping(pg, rows)
                # More full-speed rounds, alternated; the side not measured is paused
                # (the worker stopped, the subscription disabled) and drains its
                # backlog before its own round starts.
                native_rounds, strangler_rounds = [result["native_streaming"]], [streaming]
                for _ in range(args.rounds - 1):
                    worker.terminate()
                    worker.wait(60)
                    sql(pg, "native", "ALTER SUBSCRIPTION native_sub ENABLE")
                    native_caught_up(pg)
                    native_rounds.append(native_phase(pg, args, 0))
                    sql(pg, "native", "ALTER SUBSCRIPTION native_sub DISABLE")
                    worker = start_worker()
                    SPLIT.worker_pid = worker.pid
                    strangler_rounds.append(strangler_phase(pg, args, port, 0))
                if args.rounds > 1:
                    result["rounds"] = [
                        {
                            "native_changes_per_s": n["changes_per_s_applied"],
                            "strangler_changes_per_s": m["changes_per_s_applied"],
                            "apply_rate": round(
                                m["changes_per_s_applied"] / n["changes_per_s_applied"], 3
                            ),
                            "strangler_lag_p99_s": m["lag_p99_s"],
                            "native_cpu_s": n["cpu_s"],
                            "strangler_cpu_s": m["cpu_s"],
                        }
                        for n, m in zip(native_rounds, strangler_rounds, strict=True)
                    ]
            finally:
                worker.terminate()
                worker.wait(60)
                rss.stop.set()
        nat, mine = result["native_streaming"], result["strangler_streaming"]
        result["ratios"] = {
            "initial_rows_per_s": result["strangler_initial"]["ratio_to_native"],
            "tps_while_capturing": round(mine["tps"] / nat["tps"], 3),
            "apply_rate": round(mine["changes_per_s_applied"] / nat["changes_per_s_applied"], 3),
            "apply_rate_median_of_rounds": (
                statistics.median(r["apply_rate"] for r in result["rounds"])
                if "rounds" in result else None
            ),
            "lag_p99_strangler_over_native": (
                round(mine["lag_p99_s"] / nat["lag_p99_s"], 1)
                if mine["lag_p99_s"] and nat["lag_p99_s"] else None
            ),
        }  # fmt: skip
        for rate in args.rates:
            nat, mine = result[f"native_at_{rate}_tps"], result[f"strangler_at_{rate}_tps"]
            result["ratios"][f"at_{rate}_tps"] = {
                "apply_rate": round(
                    mine["changes_per_s_applied"] / nat["changes_per_s_applied"], 3
                ),
                "lag_p99_s": {"strangler": mine["lag_p99_s"], "native": nat["lag_p99_s"]},
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
