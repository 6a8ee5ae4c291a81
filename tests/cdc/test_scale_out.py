"""Scale-out with the ``kafka`` source: two ``strangler sync`` processes in one consumer
group split the partitions of pgbench's topics while pgbench runs; one is SIGKILLed
and restarted mid-run (a rebalance each way). Afterwards every balance matches the
monolith's and the branch/teller/account totals agree, as TPC-B requires."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from strangler.devstack.localstack import LogicalPostgres, TansuBroker, free_port
from strangler.devstack.relay import DebeziumRelay
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from tests.cdc.harness import execute, rows, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # its own waits add up to 1,020 s

REPO = Path(__file__).resolve().parents[2]
TABLES = ("public.pgbench_accounts", "public.pgbench_tellers", "public.pgbench_branches")
TOPICS = [f"scale.{t}" for t in TABLES]
SERVICE_DDL = (
    "CREATE TABLE accounts (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE tellers (id int PRIMARY KEY, branch int, balance int, filler char(84))",
    "CREATE TABLE branches (id int PRIMARY KEY, balance int, filler char(88))",
)


def pgbench(pg: LogicalPostgres, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres"}
    return subprocess.Popen(["pgbench", *args, "monolith_k"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def test_two_workers_split_the_partitions_under_pgbench_and_stay_exact(
    logical_pg: LogicalPostgres, broker: TansuBroker, tmp_path: Path
) -> None:
    monolith, service = logical_pg.dsn("monolith_k"), logical_pg.dsn("service_k")
    init = pgbench(logical_pg, "-i", "-s", "1", "-I", "dtgp", "-q")
    assert init.wait(300) == 0
    execute(service, *SERVICE_DDL)
    options = DebeziumOptions(
        database=logical_pg.url("monolith_k", driver="postgresql"), tables=TABLES,
        topic_prefix="scale", offsets="file", offset_file=str(tmp_path / "relay.offsets"),
        slot="strangler_scale", publication="strangler_scale",
    )  # fmt: skip
    relay = DebeziumRelay(connector_properties("scale", options), broker.bootstrap, partitions=4)
    relay.ensure_topics(TOPICS)
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:0
  sources:
    - name: scale
      kind: kafka
      options: {{bootstrap_servers: "{broker.bootstrap}", topics: {TOPICS},
                 group_id: scale-out, max_poll_interval_ms: 10000,
                 session_timeout_ms: 6000, heartbeat_interval_ms: 500}}
  targets: {{svc: "{logical_pg.url("service_k")}"}}
  tables:
    - {{source: public.pgbench_accounts, target: svc, adapter: {{table: accounts, key: [id],
        rename: {{aid: id, bid: branch, abalance: balance}}}}}}
    - {{source: public.pgbench_tellers, target: svc, adapter: {{table: tellers, key: [id],
        rename: {{tid: id, bid: branch, tbalance: balance}}}}}}
    - {{source: public.pgbench_branches, target: svc, adapter: {{table: branches, key: [id],
        rename: {{bid: id, bbalance: balance}}}}}}
""")

    def start(n: int) -> subprocess.Popen[bytes]:
        # Each worker its own admin port: the listen line is rewritten per process.
        config = tmp_path / f"routes{n}.yaml"
        config.write_text(routes.read_text().replace("127.0.0.1:0", f"127.0.0.1:{free_port()}"))
        out = (tmp_path / f"worker{n}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "strangler", "sync", "-c", str(config)],
                                cwd=REPO, stdout=out, stderr=out)  # fmt: skip

    def log() -> str:
        return (
            "\n".join(
                (tmp_path / f"worker{n}.log").read_text(errors="replace")[-1500:] for n in (1, 2)
            )
            + f"\nrelay: sent {relay.sent}, {relay.failure}"
        )

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

    relay.start()
    workers = [start(1), start(2)]
    load = pgbench(logical_pg, "-n", "-c", "4", "-T", "25")
    try:
        wait_until(lambda: relay.sent > 20_000, 120, "pgbench's changes on the topics", log)
        workers[0].send_signal(signal.SIGKILL)  # its partitions go to the other worker...
        workers[0].wait(10)
        workers[0] = start(1)  # ...and come back when it rejoins
        assert load.wait(120) == 0
        wait_until(aligned, 480, "both workers to apply everything", log)
        # TPC-B's invariant holds on the service side too: nothing lost, nothing doubled.
        [(accounts,)] = rows(service, "SELECT sum(balance) FROM accounts")
        [(tellers,)] = rows(service, "SELECT sum(balance) FROM tellers")
        [(branches,)] = rows(service, "SELECT sum(balance) FROM branches")
        assert accounts == tellers == branches
        # Every partition of the accounts topic was applied (and its offset stored).
        stored = rows(
            service,
            "SELECT count(*) FROM strangler_sync_offsets WHERE source ="
            " 'scale' AND partition LIKE 'scale.public.pgbench_accounts/%'",
        )
        assert stored == [(4,)]
    finally:
        for process in (*workers, load):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        relay.stop()
