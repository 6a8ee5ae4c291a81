"""Adapters run backwards: declarative maps invert themselves (renames, value maps, casts),
CustomerRows implements its way back, and ``strangler check`` names a context's table
that cannot be reversed, and why."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.customers import CustomerRows
from strangler.errors import ConfigError
from strangler.sync.adapters import AdapterSet, DeclarativeAdapter, reverse_adapter
from strangler.sync.model import ChangeEvent, Position, RowDelete, RowUpsert
from strangler.sync_config import ColumnMap, SyncConfig

ORDERS = {
    "table": "orders",
    "key": ["id"],
    "rename": {
        "ORD_NO": "id",
        "CUST": "customer_id",
        "TOTAL_CENTS": "total",
        "PLACED": "placed_on",
        "ST": "status",
        "NOTE": "note",
    },
    "cast": {"total": "cents", "placed_on": "yyyymmdd", "note": "blank_null"},
    "values": {"status": {"O": "open", "S": "shipped", "C": "cancelled"}},
}


def event(table: str, op: str, after: dict[str, Any] | None, key: dict[str, Any]) -> ChangeEvent:
    return ChangeEvent("svc", table, op, key, None, after, Position(1, 1), 0)  # type: ignore[arg-type]


def mapping(adapter: Any, **extra: Any) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "sources": [
                {
                    "name": "shop",
                    "kind": "sqlite",
                    "options": {"database": "m.db", "tables": ["t"]},
                },
                {"name": "svc", "kind": "sqlite", "options": {"database": "s.db", "tables": ["t"]}},
            ],
            "targets": {"service": "sqlite:///s.db", "monolith": "sqlite:///m.db"},
            "tables": [
                {
                    "source": "ORD_HDR",
                    "target": "service",
                    "from_source": "shop",
                    "adapter": adapter,
                    "reverse": {"source": "svc", "target": "monolith"},
                    **extra,
                }
            ],
        }
    )


def test_a_declarative_map_inverts_itself_round_trip() -> None:
    config = mapping(ORDERS)
    forward = DeclarativeAdapter([ColumnMap.model_validate(ORDERS)])
    back = reverse_adapter(config.tables[0], forward)
    legacy = {
        "ORD_NO": 7,
        "CUST": 3,
        "TOTAL_CENTS": "250050",
        "PLACED": "20261206",
        "ST": "S",
        "NOTE": "",
    }
    (service,) = forward.map(event("main.ORD_HDR", "c", legacy, {"ORD_NO": 7}))
    assert isinstance(service, RowUpsert)
    assert service.values == {
        "customer_id": 3,
        "total": Decimal("2500.50"),
        "placed_on": dt.date(2026, 12, 6),
        "status": "shipped",
        "note": None,
    }
    row = {**service.key, **service.values}
    (legacy_write,) = back.map(event("main.orders", "u", row, {"id": 7}))
    assert legacy_write == RowUpsert(
        "ORD_HDR",
        {"ORD_NO": 7},
        {"CUST": 3, "TOTAL_CENTS": "250050", "PLACED": "20261206", "ST": "S", "NOTE": ""},
    )
    assert back.map(event("main.orders", "d", None, {"id": 7})) == [
        RowDelete("ORD_HDR", {"ORD_NO": 7})
    ]


def test_customer_rows_reverse_writes_the_legacy_row_from_two_service_tables() -> None:
    rows = CustomerRows()
    customer = {
        "id": 42,
        "name": "Ada",
        "email": "ada@example.com",
        "status": "inactive",
        "created_at": "2019-03-04",
        "phone": None,
        "credit_limit": 2500.5,
    }
    address = {
        "customer_id": 42,
        "kind": "primary",
        "line1": "1 Main",
        "city": "Oslo",
        "zip": "0150",
    }
    assert rows.reverse(event("main.customers", "u", customer, {"id": 42})) == [
        RowUpsert(
            "customer",
            {"cust_id": 42},
            {
                "cust_nm": "Ada",
                "email_addr": "ada@example.com",
                "status_cd": "I",
                "created_yyyymmdd": "20190304",
                "phone_no": "",
                "credit_limit_cents": "250050",
            },
        )
    ]
    key = {"customer_id": 42, "kind": "primary"}
    assert rows.reverse(event("main.addresses", "c", address, key)) == [
        RowUpsert(
            "customer",
            {"cust_id": 42},
            {"addr_line1": "1 Main", "addr_city": "Oslo", "addr_zip": "0150"},
        )
    ]
    assert rows.reverse(event("main.addresses", "d", None, key)) == [
        RowUpsert("customer", {"cust_id": 42}, {"addr_line1": "", "addr_city": "", "addr_zip": ""})
    ]
    billing = {**address, "kind": "billing"}
    assert rows.reverse(event("main.addresses", "c", billing, {**key, "kind": "billing"})) == []
    assert rows.reverse(event("main.customers", "d", None, {"id": 42})) == [
        RowDelete("customer", {"cust_id": 42})
    ]
    # And the way back agrees with the way there: the legacy row maps to the same service rows.
    legacy = {
        "CUST_ID": 42,
        "cust_nm": "Ada",
        "email_addr": "ada@example.com",
        "status_cd": "I",
        "created_yyyymmdd": "20190304",
        "phone_no": "",
        "credit_limit_cents": "250050",
        "addr_line1": "1 Main",
        "addr_city": "Oslo",
        "addr_zip": "0150",
    }
    there = rows.map(event("main.customer", "u", legacy, {"cust_id": 42}))
    assert there[0] == RowUpsert(
        "customers",
        {"id": 42},
        {
            "name": "Ada",
            "email": "ada@example.com",
            "status": "inactive",
            "created_at": dt.date(2019, 3, 4),
            "phone": None,
            "credit_limit": Decimal("2500.50"),
        },
    )


ROUTES = """
legacy: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:9"}}
  svc: {{url: "http://127.0.0.1:9"}}
routes:
  - {{name: orders, match: {{path: /api/orders/**}}, to: svc}}
contexts:
  orders: {{routes: [orders], tables: [ORD_HDR, ORD_LINE]}}
sync:
  sources:
    - {{name: shop, kind: sqlite, options: {{database: m.db, tables: [ORD_HDR]}}}}
    - {{name: svc, kind: sqlite, options: {{database: s.db, tables: [orders]}}}}
  targets: {{service: "sqlite:///s.db", monolith: "sqlite:///m.db"}}
  tables:
    - source: ORD_HDR
      target: service
      from_source: shop
      adapter:
        {{table: orders, key: [id], rename: {{ORD_NO: id, PAID: paid}}, cast: {adapter_cast}}}
      reverse: {{source: svc, target: monolith}}
    - source: ORD_LINE
      target: service
      from_source: shop
      adapter: {{table: order_lines, key: [id], rename: {{LINE_NO: id}}}}
"""


def check(tmp_path: Path, cast: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(adapter_cast=cast))
    return subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_names_the_tables_that_cannot_be_reversed_and_why(tmp_path: Path) -> None:
    bad = check(tmp_path, "{paid: bool}")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert any(
        "sync.tables[0].reverse: table ORD_HDR cannot be reversed: cast paid: bool cannot tell"
        in line
        for line in lines
    ), bad.stderr
    assert any(
        "contexts.orders.tables: table ORD_LINE cannot be reversed" in line for line in lines
    ), bad.stderr
    # Only ORD_LINE's missing way back is left once the cast is one that inverts.
    fixed = check(tmp_path, "{paid: cents}")
    assert fixed.returncode == 2
    assert "ORD_HDR" not in fixed.stderr and "ORD_LINE" in fixed.stderr


def test_a_code_adapter_without_reverse_cannot_be_reversed() -> None:
    config = mapping("tests.sync.rowadapters:CustomerRows")
    try:
        AdapterSet(config)
    except ConfigError as exc:
        assert "sync.tables[0].reverse: table ORD_HDR cannot be reversed:" in str(exc)
        assert "has no reverse(event) method" in str(exc)
    else:
        raise AssertionError("a mapping without a way back was accepted")
