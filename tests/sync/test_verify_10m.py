"""``strangler verify`` on 10 million rows stays in bounded memory (slow: ~2 minutes,
most of it building the rows once with generate_series)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.slow

ROWS = 10_000_000
REPO = Path(__file__).resolve().parents[2]
MEASURE = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "strangler", "verify", "-c", sys.argv[1]])
print(f"peak_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(done.returncode)
"""


def test_verify_ten_million_rows_under_256_mb(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE pgbench_accounts (aid int PRIMARY KEY, bid int,"
                     " abalance int)")  # fmt: skip
        conn.execute("CREATE UNLOGGED TABLE accounts (id int PRIMARY KEY, branch int,"
                     " balance int)")  # fmt: skip
        conn.execute("INSERT INTO pgbench_accounts SELECT g, g / 100000, 0"
                     " FROM generate_series(1, %s) g", (ROWS,))  # fmt: skip
        conn.execute("INSERT INTO accounts SELECT g, g / 100000, 0"
                     " FROM generate_series(1, %s) g", (ROWS,))  # fmt: skip
        conn.execute("UPDATE accounts SET balance = 7 WHERE id = 7654321")
        conn.execute("ANALYZE pgbench_accounts")
        conn.execute("ANALYZE accounts")
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  sources:
    - name: mono
      kind: kafka
      monolith: "{pg_url}"
      options: {{bootstrap_servers: "127.0.0.1:9", topics: [x]}}
  targets: {{svc: "{pg_url.replace("postgresql://", "postgresql+psycopg://")}"}}
  verify: {{lag_window: 0s}}
  tables:
    - source: public.pgbench_accounts
      target: svc
      adapter: {{table: accounts, key: [id], rename: {{aid: id, bid: branch, abalance: balance}}}}
""")
    # A wrapper process whose only child is the verify: its children's peak RSS is ours.
    result = subprocess.run([sys.executable, "-c", MEASURE, str(routes)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)  # fmt: skip
    peak_kb = int(result.stderr.strip().splitlines()[-1].removeprefix("peak_kb="))
    assert result.returncode == 1, result.stdout + result.stderr  # the one drifting row
    assert 'different svc.accounts {"id":7654321}  (balance: 7 != 0)' in result.stdout
    assert f"svc.accounts: {ROWS} source rows, {ROWS} target rows" in result.stdout
    assert 0 < peak_kb < 256 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
