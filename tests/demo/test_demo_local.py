"""``strangler demo --exit --stack local``: the same migration on real servers.

PostgreSQL (a throwaway logical cluster), Redis (127.0.0.1:6379, a namespace of
its own), Debezium embedded -> a Tansu broker -> the kafka source. Slow (the JVM,
the snapshot and a consumer group join), so it runs once, as a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.slow


def test_demo_on_local_servers_passes_every_step(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "strangler",
            "demo",
            "--exit",
            "--stack",
            "local",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Debezium embedded -> Tansu broker" in out
    assert "kind: kafka" in (tmp_path / "routes.yaml").read_text()
    assert "verify: 3,796 rows compared, 0 missing, 0 extra, 0 different" in out
    assert "source auto-rollback" in out
    assert "ABORTED" not in out
    assert "$ strangler cutover customers --to service  -> exit 0" in out
    assert "written by the non-owner 0" in out
    assert "All 10 steps passed" in out
    # the demo's Redis namespace is gone afterwards
    namespace = next(
        line.split("namespace ")[1].split(")")[0]
        for line in out.splitlines()
        if "namespace " in line
    )
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        assert not list(client.scan_iter(f"strangler:{namespace}:*"))
    finally:
        client.close()
