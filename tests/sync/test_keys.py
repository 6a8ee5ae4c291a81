"""Keys and the monolith's safety, against a real PostgreSQL: a keyless table is refused
(by `strangler check` and by the capture plan), a declared key must be unique and backed
by an index, and publishing never takes away the monolith's UPDATE/DELETE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from strangler.sync.keys import ensure_publication, inspect_tables

from ..serve.conftest import routes_yaml


@pytest.fixture
def monolith(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (aid int PRIMARY KEY, abalance int)")
        conn.execute("CREATE TABLE history (tid int, aid int, delta int, mtime timestamp)")
        conn.execute("CREATE TABLE ledger (ref text NOT NULL, amount int)")
        conn.execute("INSERT INTO accounts VALUES (1, 0), (2, 0)")
        conn.execute("INSERT INTO history VALUES (1, 1, 5, now()), (1, 1, 7, now())")
        conn.execute("INSERT INTO ledger VALUES ('a', 1), ('b', 2)")
        for name in [r[0] for r in conn.execute("SELECT pubname FROM pg_publication")]:
            conn.execute(f'DROP PUBLICATION "{name}"')
    return pg_url


def test_a_table_without_a_key_is_refused_and_never_published(monolith: str) -> None:
    found = {k.table: k for k in inspect_tables(monolith, ["accounts", "public.history"], {})}
    assert found["public.accounts"].safe and found["public.accounts"].key == ("aid",)
    history = found["public.history"]
    assert not history.safe and "no primary key" in str(history.problem)

    ensure_publication(monolith, "strangler_t", [k for k, v in found.items() if v.safe])
    with psycopg.connect(monolith, autocommit=True) as conn:
        published = conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'strangler_t'"
        ).fetchall()
        assert published == [("accounts",)]
        # The legacy application can still change both tables.
        conn.execute("UPDATE history SET delta = delta + 1")
        conn.execute("DELETE FROM history WHERE delta = 8")
        conn.execute("UPDATE accounts SET abalance = 1 WHERE aid = 1")


def test_a_declared_key_that_repeats_is_refused_naming_the_duplicate(monolith: str) -> None:
    (history,) = inspect_tables(monolith, ["history"], {"history": ("tid", "aid")})
    assert not history.safe
    assert "tid=1, aid=1 appears 2 times" in str(history.problem)


def test_a_declared_key_needs_a_unique_index_and_a_replica_identity(monolith: str) -> None:
    (ledger,) = inspect_tables(monolith, ["ledger"], {"ledger": ("ref",)})
    assert not ledger.safe
    assert "CREATE UNIQUE INDEX CONCURRENTLY" in str(ledger.problem)  # unique today, no index

    with psycopg.connect(monolith, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX ledger_ref ON ledger (ref)")
    (ledger,) = inspect_tables(monolith, ["ledger"], {"ledger": ("ref",)})
    # Publishing it now would break the monolith's deletes: named, with the cost, not done.
    problem = str(ledger.problem)
    assert "REPLICA IDENTITY USING INDEX ledger_ref" in problem and "FULL" in problem
    with psycopg.connect(monolith, autocommit=True) as conn:
        identity = conn.execute("SELECT relreplident FROM pg_class WHERE relname = 'ledger'")
        assert identity.fetchone() == ("d",)  # untouched
        conn.execute("ALTER TABLE ledger REPLICA IDENTITY USING INDEX ledger_ref")
    (ledger,) = inspect_tables(monolith, ["ledger"], {"ledger": ("ref",)})
    assert ledger.safe and ledger.key == ("ref",)


def test_a_for_all_tables_publication_is_not_used(monolith: str) -> None:
    with psycopg.connect(monolith, autocommit=True) as conn:
        conn.execute("CREATE PUBLICATION strangler_all FOR ALL TABLES")
    with pytest.raises(Exception, match="FOR ALL TABLES"):
        ensure_publication(monolith, "strangler_all", ["public.accounts"])


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def sync_section(database: str, tables: str) -> str:
    return f"""\
sync:
  sources:
    - name: mono
      kind: debezium
      options: {{database: "{database}", offsets: file, offset_file: off.dat}}
  targets: {{svc: "sqlite:///svc.db"}}
  tables:
{tables}"""


def test_check_refuses_a_captured_table_without_a_key(monolith: str, tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    tables = """\
    - {source: public.accounts, target: svc, adapter: {table: accounts, key: [aid]}}
    - {source: public.history, target: svc, adapter: {table: history, key: [tid]}}
"""
    path.write_text(routes_yaml() + sync_section(monolith, tables))
    result = check(path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "public.history has no primary key" in lines[0], lines

    only_accounts = tables.split("    - {source: public.h")[0]
    path.write_text(routes_yaml() + sync_section(monolith, only_accounts))
    assert check(path).returncode == 0


def test_check_warns_but_passes_when_the_monolith_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    tables = "    - {source: public.accounts, target: svc, adapter: {table: a, key: [aid]}}\n"
    path.write_text(routes_yaml() + sync_section("postgresql://nobody@127.0.0.1:1/x", tables))
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert "warning: sync: keys not checked" in result.stderr
