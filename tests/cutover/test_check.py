"""``strangler check`` on a context whose sources a cutover could not drain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROUTES = """\
legacy: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
  svc: {url: "http://127.0.0.1:9"}
routes:
  - {name: orders, match: {path: /api/orders/**}, to: svc}
contexts:
  orders: {routes: [orders], tables: [ORD_HDR]}
sync:
  sources:
    - {name: shop, kind: sqlite, options: {database: m.db, tables: [ORD_HDR]}}
    - name: svc_k
      kind: kafka
%(monolith)s      options: {bootstrap_servers: "127.0.0.1:9092", topics: [svc.changes]}
  targets: {service: "sqlite:///s.db", monolith: "sqlite:///m.db"}
  tables:
    - source: ORD_HDR
      target: service
      from_source: shop
      adapter: {table: orders, key: [id], rename: {ORD_NO: id}}
      reverse: {source: svc_k, target: monolith}
"""


def check(tmp_path: Path, monolith: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES % {"monolith": monolith})
    return subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_kafka_reverse_source_without_monolith_is_rejected_with_key_value_and_line(
    tmp_path: Path,
) -> None:
    bad = check(tmp_path, "")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    line = next(x for x in bad.stderr.splitlines() if "sync.sources[1].monolith" in x)
    # The line of the source's entry (the key itself is missing), the key, the kind.
    assert "line 12:" in line, line  # `- name: svc_k`
    assert "source 'svc_k' (kind: kafka)" in line
    assert "table ORD_HDR (context orders)" in line
    assert "monolith: <SQLAlchemy URL" in line  # the hint: what to add

    good = check(tmp_path, '      monolith: "sqlite:///s.db"\n')
    assert good.returncode == 0, good.stderr
