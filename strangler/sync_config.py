"""The ``sync:`` section of routes.yaml: CDC sources, target databases, table mappings.

Validated with the rest of the file (errors name the key path, e.g.
``sync.tables[0].target``). Each source has a ``kind`` and the options block of the
same name (``kafka:``, ``debezium:``, ``sqlite:``). A table mapping sends one source
table to one target database through either a Python adapter (``package.module:Name``)
or a declarative mapping (rename, cast, value maps). Nothing here opens a connection
or imports an adapter; ``strangler check`` and the worker do that.

``SOURCE_KINDS`` is the one registry of CDC source kinds. This module imports nothing
of the CDC package (``strangler.sync``): a kind's options model is looked up by name
when a config is validated. Re-exported as ``strangler.sync.config``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from strangler.schema import Listen, Name
from strangler.schema import Section as _Model
from strangler.units import Duration

CASTS = frozenset(
    {"str", "int", "float", "bool", "decimal", "cents", "date", "yyyymmdd", "blank_null", "strip"}
)
"""Declarative casts; ``cents`` turns ``"250050"`` (or 250050) into ``Decimal("2500.50")``,
``yyyymmdd`` turns ``"20190304"`` into a date, ``blank_null`` turns ``""`` into null."""


COLUMN_KINDS: Final = frozenset(
    {
        "decimal",  # "12.34" (decimal.handling.mode=string) or a JSON number
        "variable_decimal",  # {"scale": 2, "value": "<base64>"}
        "date",  # days since the epoch
        "time_ms",
        "time_us",
        "time_ns",
        "timestamp_ms",
        "timestamp_us",
        "timestamp_ns",
        "timestamptz",  # ISO-8601 string (ZonedTimestamp)
        "timetz",  # ISO-8601 string (ZonedTime)
        "bytes",  # base64
        "string",
        "int",
        "float",
        "bool",
    }
)
"""Column kinds for the ``types:`` registry (decoded by ``strangler.sync.decode``).
``decimal:N`` means precise base64 with scale N (``decimal.handling.mode=precise``
without schemas)."""


def valid_kind(kind: str) -> bool:
    if kind.startswith("decimal:"):
        return kind.partition(":")[2].isdigit()
    return kind in COLUMN_KINDS


def _db_url(value: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+]*://", value):
        raise ValueError(f"{value!r} is not a database URL like postgresql://host/db")
    return value


@dataclass(frozen=True)
class SourceKind:
    """Where a CDC source kind lives: ``module:Name`` of the pydantic model of its
    ``options:``, and the module whose ``build(config, *, sync, base_dir, types)``
    makes the source for the worker."""

    options: str
    module: str


SOURCE_KINDS: Final[Mapping[str, SourceKind]] = {
    "sqlite": SourceKind(
        "strangler.sync.sources.sqlite:SqliteSourceOptions", "strangler.sync.sources.sqlite"
    ),
    "kafka": SourceKind(
        "strangler.sync.sources.kafka:KafkaOptions", "strangler.sync.sources.kafka"
    ),
    "debezium": SourceKind(
        "strangler.sync.sources.debezium_config:DebeziumOptions",
        "strangler.sync.sources.debezium",
    ),
    "pgoutput": SourceKind(
        "strangler.sync.sources.pgoutput_config:PgoutputOptions",
        "strangler.sync.sources.pgoutput",
    ),
}
"""``sources[].kind`` -> its source. Adding a kind: its module, and a line here."""

SLOT_KINDS: Final = frozenset({"debezium", "pgoutput"})
"""Kinds that read one PostgreSQL database's replication slot themselves
(``options.database``, ``options.tables``): one ordered stream per source."""


def options_model(kind: str) -> type[BaseModel] | None:
    """The options model for a source kind, or None if its module is not installed."""
    module_name, _, name = SOURCE_KINDS[kind].options.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    model = getattr(module, name, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


class SourceConfig(_Model):
    name: Name
    kind: str
    """One of ``SOURCE_KINDS``."""
    options: Mapping[str, Any] = {}
    """Kind-specific options, validated by the kind's own model (``SOURCE_KINDS``)."""
    monolith: str | None = None
    """SQLAlchemy URL of the database this source captures, read by ``strangler verify``
    (defaults to the SQLite file for ``kind: sqlite`` and ``options.database`` for
    ``kind: debezium``)."""

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in SOURCE_KINDS:
            raise ValueError(f"{value!r} is not one of {', '.join(sorted(SOURCE_KINDS))}")
        return value

    @field_validator("monolith")
    @classmethod
    def _monolith(cls, value: str | None) -> str | None:
        return None if value is None else _db_url(value)

    @model_validator(mode="after")
    def _options(self) -> SourceConfig:
        model = options_model(self.kind)
        if model is not None:
            try:
                model.model_validate(dict(self.options))
            except ValidationError as exc:
                raise ValueError(
                    "; ".join(
                        f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                        for e in exc.errors()
                    )
                ) from None
        return self

    def parsed_options(self) -> Any:
        """The options as the kind's model (raises ConfigError-worthy ValueError if bad)."""
        model = options_model(self.kind)
        return model.model_validate(dict(self.options)) if model else dict(self.options)

    def monolith_url(self) -> str | None:
        if self.monolith:
            return self.monolith
        if self.kind == "sqlite" and "database" in self.options:
            return f"sqlite:///{self.options['database']}"
        database = self.options.get("database")
        return str(database) if self.kind in SLOT_KINDS and database else None


class ColumnMap(_Model):
    """Declarative adapter: one source row -> one target row."""

    table: str
    """Target table name."""
    key: tuple[str, ...] = Field(min_length=1)
    """Target key columns (after renaming)."""
    rename: Mapping[str, str] = {}
    """source column -> target column."""
    cast: Mapping[str, str] = {}
    """target column -> cast (see CASTS)."""
    values: Mapping[str, Mapping[str, Any]] = {}
    """target column -> {legacy value: new value}; an unmapped value is an error."""
    include: tuple[str, ...] | None = None
    """Source columns to carry (default: all)."""
    exclude: tuple[str, ...] = ()

    @field_validator("cast")
    @classmethod
    def _cast(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for column, cast in value.items():
            if cast not in CASTS:
                raise ValueError(f"{column}: {cast!r} is not one of {', '.join(sorted(CASTS))}")
        return value


class ReverseConfig(_Model):
    """How a table's data flows back (service -> monolith) once its context is owned
    by the service: which source captures the service's database, which target is the
    monolith's database. The mapping itself is the adapter run in reverse (a
    declarative map inverts itself; a Python adapter implements ``reverse(event)``)."""

    source: str
    """The ``sync.sources`` entry that captures the service's database."""
    target: str
    """The ``sync.targets`` entry that is the monolith's database."""
    tables: tuple[str, ...] = ()
    """Service tables whose changes flow back (default: the declarative map's tables,
    or a Python adapter's ``reverse_tables``)."""


class TableMapping(_Model):
    source: str
    """Source table: ``schema.table`` or a bare table name."""
    target: str
    """A name from ``sync.targets``."""
    adapter: str | ColumnMap | tuple[ColumnMap, ...]
    """``package.module:Name`` of a RowAdapter, or declarative column map(s)."""
    from_source: str | None = None
    """Only events of this source (default: any source)."""
    types: Mapping[str, str] = {}
    """column -> kind, for converters with schemas disabled (see COLUMN_KINDS)."""
    reverse: ReverseConfig | None = None
    """Service -> monolith sync for this table, used while its context's owner is
    ``service`` (see ``contexts:``)."""
    new_columns: Literal["ignore", "add"] = "ignore"
    """A new source column the mapping does not name: left out of the writes (ignore)
    or added to the target table (add). See ``schema.py``."""
    source_key: tuple[str, ...] = ()
    """The source table's unique key when it has no primary key (source column names);
    a unique index on these NOT NULL columns must exist (see ``keys.py``)."""

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"{value!r} is not an import path like package.module:Name")
        return value

    @field_validator("types")
    @classmethod
    def _types(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for column, kind in value.items():
            if not valid_kind(kind):
                raise ValueError(f"{column}: {kind!r} is not a known column kind")
        return value


class VerifyConfig(_Model):
    lag_window: Duration = 5.0
    """Rows that differ are re-checked after this long; only lasting drift is reported."""
    chunk: int = Field(256, ge=2)
    """Rows per checksummed range before bisecting."""


class SyncConfig(_Model):
    listen: Listen = "127.0.0.1:8082"
    """The worker's admin listener: /api/sync, /metrics, /healthz."""
    sources: tuple[SourceConfig, ...] = ()
    targets: Mapping[str, str] = {}
    """Target name -> SQLAlchemy URL (postgresql://... or sqlite:///...)."""
    tables: tuple[TableMapping, ...] = ()
    batch_size: int = Field(2000, ge=1, le=50_000)
    """Events per target transaction (bigger: fewer round trips per change)."""
    retries: int = Field(3, ge=0, le=20)
    """Attempts per failing event before it is dead-lettered."""
    verify: VerifyConfig = VerifyConfig()
    graveyard_retention: Duration = 7 * 24 * 3600.0
    """How long a deleted row's position is kept against replays (``retention.py``):
    at least the source topics' retention."""

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for url in value.values():
            _db_url(url)
        return value

    @model_validator(mode="after")
    def _cross(self) -> SyncConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique: {', '.join(dupes)}")
        for i, table in enumerate(self.tables):
            if table.target not in self.targets:
                raise ValueError(f"tables[{i}].target: {table.target!r} is not one of targets")
            if table.from_source is not None and table.from_source not in names:
                raise ValueError(
                    f"tables[{i}].from_source: {table.from_source!r} is not one of sources"
                )
            if table.reverse is not None:
                _check_reverse(i, table, names, self.targets)
        return self

    def reverse_sources(self) -> frozenset[str]:
        """Sources that capture a service's database (their events flow back)."""
        return frozenset(m.reverse.source for m in self.tables if m.reverse is not None)

    def captured_target(self, source: str) -> str | None:
        """The target whose database ``source`` captures, when sync writes there too
        (the forward source captures the reverse target, and the other way round)."""
        for mapping in self.tables:
            if mapping.reverse is None:
                continue
            if mapping.from_source == source:
                return mapping.reverse.target
            if mapping.reverse.source == source:
                return mapping.target
        return None

    def mapping_for(self, source: str, table: str) -> TableMapping | None:
        """The mapping for a source table (``schema.table`` first, then the bare name)."""
        bare = table.rpartition(".")[2]
        for wanted in (table, bare):
            for mapping in self.tables:
                if mapping.source == wanted and mapping.from_source in (None, source):
                    return mapping
        return None


def _check_reverse(
    i: int, table: TableMapping, sources: list[str], targets: Mapping[str, str]
) -> None:
    reverse = table.reverse
    assert reverse is not None
    if table.from_source is None:
        raise ValueError(
            f"tables[{i}].from_source: needed with reverse: (which source captures the monolith)"
        )
    # Each of the way back's two ends must exist, and must not be the way there's.
    for key, value, known, forward, why in (
        (
            "source",
            reverse.source,
            sources,
            table.from_source,
            "captures the monolith; name the source that captures the service's database",
        ),
        (
            "target",
            reverse.target,
            targets,
            table.target,
            "is the service's database; name the monolith's",
        ),
    ):
        if value not in known:
            raise ValueError(f"tables[{i}].reverse.{key}: {value!r} is not one of {key}s")
        if value == forward:
            raise ValueError(f"tables[{i}].reverse.{key}: {value!r} {why}")
