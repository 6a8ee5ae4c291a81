"""Options of the ``debezium`` source and the Debezium connector properties they become.

The options are the ``options:`` mapping of a ``kind: debezium`` source in the
``sync:`` section; ``connector_properties`` turns them into the PostgreSQL connector's
properties (pgoutput, JSON converter, ``decimal.handling.mode=string``, truncates on).
Pure values: nothing here starts Java or connects anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field

from strangler.errors import ConfigError, Problem
from strangler.sync.sources.pg_options import SlotOptions, default_name
from strangler.sync.watermark import WATERMARK_TABLE
from strangler.units import Duration


class DebeziumOptions(SlotOptions):
    """``options:`` of a ``kind: debezium`` source (``database`` and ``tables``: see
    ``SlotOptions``)."""

    slot: str | None = None
    """Replication slot name (default ``strangler_<source name>``)."""
    publication: str | None = None
    """Publication name (default ``strangler_<source name>``); created filtered to ``tables``."""
    topic_prefix: str | None = None
    """Debezium ``topic.prefix`` (default: the source name)."""
    offsets: Literal["target", "file"] = "target"
    """Where Debezium keeps its offsets: a table in the target database, or a file."""
    offset_file: str | None = None
    """With ``offsets: file``: the file (created if missing)."""
    offset_target: str | None = None
    """With ``offsets: target``: which of ``sync.targets`` (default: the only one)."""
    offset_table: str = "strangler_debezium_offsets"
    schemas: bool = False
    """JSON converter with schemas (types travel with every event, most of its bytes);
    off by default: the column types are read once from the monolith's catalog."""
    snapshot: str = "initial"
    """``bulk``: strangler's own initial load (COPY, parallel chunks; ``snapshot.py``),
    then Debezium streams from the load's consistent point; or a Debezium
    ``snapshot.mode``: initial, no_data, always, initial_only, when_needed."""
    load_parallel: int = Field(2, ge=1, le=32)
    """With ``snapshot: bulk``: chunks loaded at once."""
    load_chunk_rows: int = Field(100_000, ge=1000)
    """With ``snapshot: bulk``: rows per chunk (the unit of progress after a crash)."""
    offset_flush_ms: int = Field(1000, ge=0)
    """How often Debezium saves its offsets (0: after every batch)."""
    max_batch_size: int = Field(4096, ge=1)
    poll_interval_ms: int = Field(50, ge=1)
    heartbeat: Duration = 1.0
    """How often the worker bumps its row in the monolith's ``strangler_heartbeat`` to
    measure lag honestly (0: off; then lag is only known while events flow)."""
    properties: dict[str, str] = {}
    """Extra Debezium properties; they win over the ones derived above."""
    log_level: str = "WARN"
    jvm_opts: tuple[str, ...] = ()


def jdbc_url(url: str) -> tuple[str, str, str]:
    """``postgresql+driver://user:pw@host:port/db`` -> (JDBC URL, user, password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    database = parts.path.lstrip("/")
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    return f"jdbc:postgresql://{host}:{port}/{database}", user, password


def connector_properties(
    name: str, options: DebeziumOptions, offsets_url: str | None = None
) -> dict[str, str]:
    """Debezium engine properties for source ``name``.

    ``offsets_url`` is the target database (SQLAlchemy URL) when ``options.offsets`` is
    ``target``; Debezium then keeps its offsets in ``options.offset_table`` there.
    """
    parts = urlsplit(options.database)
    props: dict[str, str] = {
        "name": name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": parts.hostname or "localhost",
        "database.port": str(parts.port or 5432),
        "database.user": unquote(parts.username or "postgres"),
        "database.password": unquote(parts.password or ""),
        "database.dbname": parts.path.lstrip("/"),
        "topic.prefix": options.topic_prefix or name,
        "plugin.name": "pgoutput",
        "slot.name": options.slot or default_name(name),
        "publication.name": options.publication or default_name(name),
        "publication.autocreate.mode": "filtered" if options.tables else "all_tables",
        # bulk: strangler loads the tables itself, Debezium only streams.
        "snapshot.mode": "no_data" if options.snapshot == "bulk" else options.snapshot,
        # Exact values: decimals as strings; truncates are events too (default skips them).
        "decimal.handling.mode": "string",
        "skipped.operations": "none",
        "tombstones.on.delete": "true",
        "key.converter.schemas.enable": str(options.schemas).lower(),
        "value.converter.schemas.enable": str(options.schemas).lower(),
        "max.batch.size": str(options.max_batch_size),
        "max.queue.size": str(options.max_batch_size * 4),
        "poll.interval.ms": str(options.poll_interval_ms),
        # The handler returns only once a batch is committed in the target, so any offset
        # Debezium flushes is safe; flushing at most once a second keeps a database write
        # off every batch. A crash re-delivers up to a second of events: stale, rejected.
        "offset.flush.interval.ms": str(options.offset_flush_ms),
    }
    if options.tables:
        # The drain's watermarks are captured with the tables, in the same order (watermark.py).
        schema = options.tables[0].rpartition(".")[0] or "public"
        tables = (*options.tables, f"{schema}.{WATERMARK_TABLE}")
        props["table.include.list"] = ",".join(_regex_literal(t) for t in tables)
    if options.offsets == "file":
        if not options.offset_file:
            raise ConfigError([Problem("options.offset_file", "required when offsets: file")])
        Path(options.offset_file).parent.mkdir(parents=True, exist_ok=True)
        props["offset.storage"] = "org.apache.kafka.connect.storage.FileOffsetBackingStore"
        props["offset.storage.file.filename"] = options.offset_file
    else:
        if offsets_url is None or urlsplit(offsets_url).scheme.split("+")[0] not in (
            "postgresql",
            "postgres",
        ):
            raise ConfigError(
                [Problem("options.offsets", "target needs a PostgreSQL target; use offsets: file")]
            )
        url, user, password = jdbc_url(offsets_url)
        props["offset.storage"] = "io.debezium.storage.jdbc.offset.JdbcOffsetBackingStore"
        props["offset.storage.jdbc.connection.url"] = url
        props["offset.storage.jdbc.connection.user"] = user
        # Debezium insists on a password even where the server trusts the user.
        props["offset.storage.jdbc.connection.password"] = password or "unused"
        props["offset.storage.jdbc.table.name"] = options.offset_table
    props.update(options.properties)
    return props


def _regex_literal(table: str) -> str:
    # table.include.list entries are regular expressions anchored on the whole name.
    return table.replace(".", "\\.")
