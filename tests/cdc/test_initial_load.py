"""The bulk initial load (``snapshot: bulk``) with real Debezium streaming after it, run as
an operator runs it: pgbench's tables copied through a renaming mapping while pgbench
keeps writing, SIGKILLed mid-load and restarted (done chunks are not loaded again),
then SIGKILLed nine more times at random points; afterwards every row matches, no
account version was written twice or went backwards, and TPC-B's totals agree."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strangler.devstack.localstack import LogicalPostgres, free_port
from tests.cdc.harness import execute, rows, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]

MONOLITH_DDL = (
    # A version per account row, so the service side can show each version arriving once.
    "ALTER TABLE pgbench_accounts ADD COLUMN version int NOT NULL DEFAULT 0",
    "CREATE FUNCTION bump() RETURNS trigger AS $$ BEGIN NEW.version := OLD.version + 1;"
    " RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER bump BEFORE UPDATE ON pgbench_accounts FOR EACH ROW EXECUTE FUNCTION bump()",
)
SERVICE_DDL = (
    "CREATE TABLE accounts (id int PRIMARY KEY, branch int, balance int, filler char(84),"
    " version int)",
    "CREATE TABLE loaded_writes (seq bigserial, id int, version int)",
    "CREATE FUNCTION loaded_write() RETURNS trigger AS $$ BEGIN INSERT INTO loaded_writes"
    " (id, version) VALUES (NEW.id, NEW.version); RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER loaded_write AFTER INSERT OR UPDATE ON accounts FOR EACH ROW"
    " EXECUTE FUNCTION loaded_write()",
    "CREATE TABLE tellers (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE branches (id int PRIMARY KEY, balance int, filler char(88))",
)


def pgbench(pg: LogicalPostgres, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres"}
    return subprocess.Popen(["pgbench", *args, "monolith_c"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def test_bulk_load_resumes_after_sigkill_and_streaming_continues_exactly(
    logical_pg: LogicalPostgres, tmp_path: Path
) -> None:
    monolith, service = logical_pg.dsn("monolith_c"), logical_pg.dsn("service_c")
    init = pgbench(logical_pg, "-i", "-s", "2", "-I", "dtgp", "-q")
    assert init.wait(300) == 0, init.stderr.read() if init.stderr else ""
    execute(monolith, *MONOLITH_DDL)
    execute(service, *SERVICE_DDL)
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{free_port()}
  sources:
    - name: bench
      kind: debezium
      options:
        database: "{logical_pg.url("monolith_c", driver="postgresql")}"
        tables: [public.pgbench_accounts, public.pgbench_tellers, public.pgbench_branches]
        slot: strangler_bulk
        snapshot: bulk
        load_parallel: 1
        load_chunk_rows: 5000
  targets: {{svc: "{logical_pg.url("service_c")}"}}
  tables:
    - {{source: public.pgbench_accounts, target: svc, adapter: {{table: accounts, key: [id],
        rename: {{aid: id, bid: branch, abalance: balance}}}}}}
    - {{source: public.pgbench_tellers, target: svc, adapter: {{table: tellers, key: [id],
        rename: {{tid: id, bid: branch, tbalance: balance}}}}}}
    - {{source: public.pgbench_branches, target: svc, adapter: {{table: branches, key: [id],
        rename: {{bid: id, bbalance: balance}}}}}}
""")

    def start() -> subprocess.Popen[bytes]:
        out = (tmp_path / "worker.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "strangler", "sync", "-c", str(routes)],
                                cwd=REPO, stdout=out, stderr=out)  # fmt: skip

    def log() -> str:
        return (tmp_path / "worker.log").read_text(errors="replace")[-3000:]

    def chunks_done() -> int:
        found = rows(service, "SELECT count(*) FILTER (WHERE done) FROM strangler_initial_loads")
        return int(found[0][0])

    def loads_exist() -> bool:
        return bool(rows(service, "SELECT to_regclass('strangler_initial_loads')")[0][0])

    load = pgbench(logical_pg, "-c", "2", "-T", "70", "-n")  # writes all the while
    worker = start()
    try:
        wait_until(lambda: loads_exist() and chunks_done() >= 5, 120, "some chunks", log)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        done = "SELECT source_table, chunk, rows, finished_at FROM strangler_initial_loads"
        done_before = rows(service, f"{done} WHERE done ORDER BY 1, 2")
        worker = start()
        rng = random.Random(16)
        for _kill in range(9):  # nine more, anywhere: loading, JVM start-up, streaming
            time.sleep(rng.uniform(3.0, 8.0))
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            worker = start()
        assert load.wait(180) == 0
        query = {
            "pgbench_accounts": "SELECT aid, bid, abalance, version FROM pgbench_accounts"
            " ORDER BY 1",
            "pgbench_tellers": "SELECT tid, bid, tbalance FROM pgbench_tellers ORDER BY 1",
            "pgbench_branches": "SELECT bid, bbalance FROM pgbench_branches ORDER BY 1",
        }
        mine = {
            "pgbench_accounts": "SELECT id, branch, balance, version FROM accounts ORDER BY 1",
            "pgbench_tellers": "SELECT id, branch, balance FROM tellers ORDER BY 1",
            "pgbench_branches": "SELECT id, balance FROM branches ORDER BY 1",
        }

        def aligned() -> bool:
            return all(rows(monolith, query[t]) == rows(service, mine[t]) for t in query)

        wait_until(aligned, 240, "the load and the stream to catch up", log)
        # The chunks done before the kill were not loaded again (same finish time), and
        # every chunk is done now.
        after = {r[:2]: r for r in rows(service, f"{done} ORDER BY 1, 2")}
        assert all(after[r[:2]] == r for r in done_before)
        assert all(r[3] is not None for r in after.values()) and len(after) > len(done_before)
        # In the chunks loaded before the first kill (the load's own snapshot): no account
        # version written twice, none after a newer one, through nine more kills. (Chunks
        # loaded after a crash come from a newer snapshot and see the changes in between
        # once more: they end right, checked above, but may step back meanwhile.)
        first = [(lo, hi) for t, _c, _r, _f, lo, hi in rows(
            service, "SELECT source_table, chunk, rows, finished_at, low::int, high::int"
                     " FROM strangler_initial_loads WHERE source_table = 'public.pgbench_accounts'"
        ) if (t, _c, _r, _f) in done_before]  # fmt: skip
        assert first
        inside = " OR ".join(f"(id >= {lo or 0} AND id < {hi or 2**31 - 1})" for lo, hi in first)
        [(total, distinct)] = rows(service, "SELECT count(*), count(DISTINCT (id, version))"
                                            f" FROM loaded_writes WHERE {inside}")  # fmt: skip
        assert total == distinct
        back = rows(service, "SELECT count(*) FROM (SELECT version <= lag(version) OVER"
                             " (PARTITION BY id ORDER BY seq) AS back FROM loaded_writes"
                             f" WHERE {inside}) w WHERE back")  # fmt: skip
        assert back == [(0,)]
        [(accounts,)] = rows(service, "SELECT sum(balance) FROM accounts")
        [(tellers,)] = rows(service, "SELECT sum(balance) FROM tellers")
        [(branches,)] = rows(service, "SELECT sum(balance) FROM branches")
        assert accounts == tellers == branches
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log()
    finally:
        for process in (worker, load):
            if process.poll() is None:
                process.kill()
                process.wait(10)
