"""The ``sync:`` section is validated with key paths, and declarative adapters translate
legacy values (codes, cents strings, YYYYMMDD dates) the way the docs say."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from strangler.config import load_config, parse_config_text
from strangler.errors import ChangeEventError, ConfigError
from strangler.sync.adapters import AdapterSet, DeclarativeAdapter
from strangler.sync.model import ChangeEvent, Op, Position, RowDelete, RowUpsert
from strangler.sync_config import ColumnMap

HEAD = """
legacy: monolith
upstreams: {monolith: {url: "http://127.0.0.1:9"}}
"""


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(HEAD + text)
    return str(caught.value)


def test_source_options_are_validated_by_kind_with_the_key_named() -> None:
    text = problems("""
sync:
  sources: [{name: mono, kind: sqlite, options: {tables: []}}]
""")
    assert "sync.sources[0]" in text
    assert "options.database: Field required" in text


def test_unknown_target_and_bad_cast_are_named() -> None:
    assert "tables[0].target: 'nowhere' is not one of targets" in problems("""
sync:
  targets: {svc: "sqlite:///svc.db"}
  tables: [{source: customers, target: nowhere, adapter: "a.b:C"}]
""")
    assert "'pennies' is not one of" in problems("""
sync:
  targets: {svc: "sqlite:///svc.db"}
  tables: [{source: c, target: svc, adapter: {table: c, key: [id], cast: {x: pennies}}}]
""")
    assert "'decimal:x' is not a known column kind" in problems("""
sync:
  targets: {svc: "sqlite:///svc.db"}
  tables: [{source: c, target: svc, adapter: "a.b:C", types: {price: "decimal:x"}}]
""")


def test_check_reports_an_adapter_that_does_not_import(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        HEAD
        + """
sync:
  targets: {svc: "sqlite:///svc.db"}
  tables: [{source: customers, target: svc, adapter: "no_such_module:Rows"}]
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(routes)
    assert "sync.tables[0].adapter" in str(caught.value)
    assert "does not import" in str(caught.value)


def legacy(op: Op = "c", **row: object) -> ChangeEvent:
    after = {
        "CUST_ID": 7,
        "STATUS_CD": "A",
        "BAL": "250050",
        "SINCE": "20190304",
        "PHONE": "",
        "NOTE": " hi ",
        **row,
    }
    return ChangeEvent(
        "mono",
        "main.customer",
        op,
        {"CUST_ID": 7},
        after if op == "d" else None,
        None if op == "d" else after,
        Position(1, 1),
        0,
    )


CMAP = ColumnMap.model_validate(
    {
        "table": "customers",
        "key": ["id"],
        "rename": {
            "CUST_ID": "id",
            "STATUS_CD": "status",
            "BAL": "credit",
            "SINCE": "since",
            "PHONE": "phone",
            "NOTE": "note",
        },
        "cast": {"credit": "cents", "since": "yyyymmdd", "phone": "blank_null", "note": "strip"},
        "values": {"status": {"A": "active", "I": "inactive"}},
    }
)


def test_declarative_mapping_renames_casts_and_translates() -> None:
    (write,) = DeclarativeAdapter([CMAP]).map(legacy())
    assert write == RowUpsert(
        "customers",
        {"id": 7},
        {
            "status": "active",
            "credit": Decimal("2500.50"),
            "since": dt.date(2019, 3, 4),
            "phone": None,
            "note": "hi",
        },
    )
    (gone,) = DeclarativeAdapter([CMAP]).map(legacy("d"))
    assert gone == RowDelete("customers", {"id": 7})


def test_declarative_mapping_rejects_unknown_codes_and_bad_values() -> None:
    with pytest.raises(ChangeEventError, match="'Z' is not one of"):
        DeclarativeAdapter([CMAP]).map(legacy(STATUS_CD="Z"))
    with pytest.raises(ChangeEventError, match=r"BAL -> customers\.credit"):
        DeclarativeAdapter([CMAP]).map(legacy(BAL="12.5"))


def test_adapter_set_routes_by_qualified_or_bare_table_name() -> None:
    config = parse_config_text(
        HEAD
        + """
sync:
  targets: {svc: "sqlite:///svc.db"}
  tables:
    - {source: customer, target: svc, adapter: {table: customers, key: [id]}}
"""
    ).sync
    assert config is not None
    adapters = AdapterSet(config)
    assert adapters.route("mono", "main.customer") is not None
    assert adapters.route("mono", "public.customer") is not None
    assert adapters.route("mono", "main.orders") is None
