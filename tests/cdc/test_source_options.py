"""Configuring the kafka and debezium sources: what a user writes under ``options:``
becomes the right consumer and connector settings, and mistakes name the key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from strangler.errors import ConfigError
from strangler.sync.sources import debezium
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from strangler.sync_config import SyncConfig

PG = "postgresql://dbz:s%40cret@monolith-db:6543/shop"


def sync(sources: list[dict[str, Any]], targets: dict[str, str] | None = None) -> SyncConfig:
    return SyncConfig.model_validate(
        {"sources": sources, "targets": targets or {"svc": "postgresql://svc-db/customers"}}
    )


def test_connector_settings_follow_the_recommendations() -> None:
    options = DebeziumOptions(database=PG, tables=("public.customer",))
    props = connector_properties("monolith", options, "postgresql+psycopg://app@svc-db/customers")
    assert props["plugin.name"] == "pgoutput"
    assert props["decimal.handling.mode"] == "string"
    assert props["skipped.operations"] == "none"
    # The drain's watermarks are captured with the tables (strangler.sync.watermark).
    assert props["table.include.list"] == "public\\.customer,public\\.strangler_watermarks"
    assert (props["database.hostname"], props["database.port"]) == ("monolith-db", "6543")
    assert (props["database.user"], props["database.password"]) == ("dbz", "s@cret")
    assert props["slot.name"] == "strangler_monolith"
    assert props["offset.storage.jdbc.connection.url"] == "jdbc:postgresql://svc-db:5432/customers"
    assert props["offset.storage.jdbc.connection.user"] == "app"


def test_offsets_in_a_file_and_extra_properties_win() -> None:
    options = DebeziumOptions(
        database=PG, offsets="file", offset_file="/tmp/x/offsets.dat",
        properties={"snapshot.mode": "no_data"},
    )  # fmt: skip
    props = connector_properties("m", options)
    assert props["offset.storage.file.filename"] == "/tmp/x/offsets.dat"
    assert props["snapshot.mode"] == "no_data"


def test_offsets_in_a_sqlite_target_are_refused_with_the_way_out() -> None:
    with pytest.raises(ConfigError, match="use offsets: file"):
        connector_properties("m", DebeziumOptions(database=PG), "sqlite:///svc.db")


def test_bad_debezium_options_name_the_key() -> None:
    with pytest.raises(ValidationError, match=r"options\.tables.*schema\.table"):
        sync([{"name": "m", "kind": "debezium",
               "options": {"database": PG, "tables": ["customer"]}}])  # fmt: skip
    with pytest.raises(ValidationError, match=r"options\.database"):
        sync([{"name": "m", "kind": "debezium", "options": {"database": "mysql://x/y"}}])


def test_kafka_source_needs_topics_or_a_pattern_not_both() -> None:
    with pytest.raises(ValidationError, match="exactly one of topics or topic_pattern"):
        sync([{"name": "k", "kind": "kafka", "options": {"bootstrap_servers": "b:9092"}}])
    options = {"bootstrap_servers": "b:9092", "topic_pattern": "m\\..*"}
    config = sync([{"name": "k", "kind": "kafka", "options": options}])
    assert config.sources[0].parsed_options().topic_pattern == "m\\..*"


def test_offsets_target_must_be_named_when_there_are_several() -> None:
    config = sync(
        [{"name": "m", "kind": "debezium", "options": {"database": PG}}],
        {"a": "postgresql://h/a", "b": "postgresql://h/b"},
    )
    with pytest.raises(ConfigError, match="offset_target"):
        debezium.build(config.sources[0], sync=config)
    config = sync(
        [{"name": "m", "kind": "debezium", "options": {"database": PG, "offset_target": "b"}}],
        {"a": "postgresql://h/a", "b": "postgresql://h/b"},
    )
    source = debezium.build(config.sources[0], sync=config)
    assert source.properties["offset.storage.jdbc.connection.url"] == "jdbc:postgresql://h:5432/b"
