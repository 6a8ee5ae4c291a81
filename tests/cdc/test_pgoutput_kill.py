"""The ``pgoutput`` source under pgbench, its ``strangler sync`` process SIGKILLed again and
again: nothing lost, nothing applied twice, the monolith's own writes untouched.

pgbench (TPC-B, 4 clients) runs against a logical PostgreSQL monolith while the worker
is killed mid-stream eight times and restarted each time (a killed worker leaves a
replication connection behind that the server may still hold for a moment: the new one
retries). Afterwards every balance matches the monolith's, the account, teller and
branch totals agree as TPC-B requires, and no account was written more often than
the monolith changed it (plus its initial load): a change applied twice would show.
``pgbench_history`` has no key: it is refused, and the monolith can still update and
delete its rows (a publication that took it would stop both).
"""

from __future__ import annotations

import os
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
SERVICE_DDL = (
    "CREATE TABLE accounts (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE tellers (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE branches (id int PRIMARY KEY, balance int, filler char(88))",
    "CREATE TABLE account_writes (id int NOT NULL)",
    "CREATE FUNCTION account_written() RETURNS trigger AS $$ BEGIN"
    " INSERT INTO account_writes VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER account_written AFTER INSERT OR UPDATE ON accounts"
    " FOR EACH ROW EXECUTE FUNCTION account_written()",
)
KILLS = 8


def pgbench(pg: LogicalPostgres, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres"}
    return subprocess.Popen(["pgbench", *args, "monolith_pk"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def test_killed_again_and_again_under_pgbench_it_stays_exact(
    logical_pg: LogicalPostgres, tmp_path: Path
) -> None:
    monolith, service = logical_pg.dsn("monolith_pk"), logical_pg.dsn("service_pk")
    assert pgbench(logical_pg, "-i", "-s", "1", "-I", "dtgp", "-q").wait(300) == 0
    execute(service, *SERVICE_DDL)
    config = tmp_path / "routes.yaml"
    tables = ["public.pgbench_accounts", "public.pgbench_tellers", "public.pgbench_branches",
              "public.pgbench_history"]  # fmt: skip
    config.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{free_port()}
  sources:
    - name: killed
      kind: pgoutput
      options: {{database: "{logical_pg.url("monolith_pk", driver="postgresql")}",
                 tables: {tables}, load_chunk_rows: 20000}}
  targets: {{svc: "{logical_pg.url("service_pk")}"}}
  tables:
    - {{source: public.pgbench_accounts, target: svc, adapter: {{table: accounts, key: [id],
        rename: {{aid: id, bid: branch, abalance: balance}}}}}}
    - {{source: public.pgbench_tellers, target: svc, adapter: {{table: tellers, key: [id],
        rename: {{tid: id, bid: branch, tbalance: balance}}}}}}
    - {{source: public.pgbench_branches, target: svc, adapter: {{table: branches, key: [id],
        rename: {{bid: id, bbalance: balance}}}}}}
""")
    log_path = tmp_path / "worker.log"

    def start() -> subprocess.Popen[bytes]:
        out = log_path.open("ab")
        return subprocess.Popen([sys.executable, "-m", "strangler", "sync", "-c", str(config)],
                                cwd=REPO, stdout=out, stderr=out)  # fmt: skip

    def log() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    query = {
        "SELECT aid, abalance FROM pgbench_accounts ORDER BY 1": "accounts",
        "SELECT tid, tbalance FROM pgbench_tellers ORDER BY 1": "tellers",
        "SELECT bid, bbalance FROM pgbench_branches ORDER BY 1": "branches",
    }

    def aligned() -> bool:
        return all(
            rows(monolith, q) == rows(service, f"SELECT id, balance FROM {t} ORDER BY 1")
            for q, t in query.items()
        )

    worker = start()
    load: subprocess.Popen[bytes] | None = None
    try:
        wait_until(aligned, 180, "the initial load", log)
        load = pgbench(logical_pg, "-n", "-c", "4", "-j", "2", "-T", "40")
        for _ in range(KILLS):
            time.sleep(3.5)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            worker = start()
        assert load.wait(120) == 0, load.stderr.read() if load.stderr else ""
        wait_until(aligned, 240, "every change applied after the kills", log)
        [(accounts,)] = rows(service, "SELECT sum(balance) FROM accounts")
        [(tellers,)] = rows(service, "SELECT sum(balance) FROM tellers")
        [(branches,)] = rows(service, "SELECT sum(balance) FROM branches")
        assert accounts == tellers == branches
        [(transactions,)] = rows(monolith, "SELECT count(*) FROM pgbench_history")
        assert transactions > 1000  # the kills happened under real load
        # Each account's writes in the service: at most its changes in the monolith (one
        # per pgbench transaction that drew it, in pgbench_history) plus its initial load.
        changes = dict(rows(monolith, "SELECT aid, count(*) FROM pgbench_history GROUP BY aid"))
        writes = rows(service, "SELECT id, count(*) FROM account_writes GROUP BY id")
        twice = [(i, n, changes.get(i, 0)) for i, n in writes if n > changes.get(i, 0) + 1]
        assert not twice, f"accounts written more often than changed: {twice[:10]}"
        assert len(writes) == 100_000
        # The keyless history table was refused, and the monolith still updates and
        # deletes its rows.
        assert "pgbench_history has no primary key" in log()
        execute(monolith, "UPDATE pgbench_history SET delta = delta WHERE tid = 1",
                "DELETE FROM pgbench_history WHERE tid = 2")  # fmt: skip
    finally:
        for process in (worker, load):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
