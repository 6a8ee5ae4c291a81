"""What the embedded Debezium captures: the safe tables, and the publication it reads.

Run once before the engine starts (it connects to the monolith). Every table the
source would capture (``options.tables``, or every user table when that is empty) is
checked by ``keys.inspect_table``; the safe ones go into strangler's publication
(created here, never ``FOR ALL TABLES``) and into ``table.include.list``, a declared
``source_key`` becomes Debezium's ``message.key.columns``, and the refused ones are
returned with the reason so status and logs can name them. Debezium's own
publication autocreation is switched off: it would publish keyless tables and stop
the monolith's UPDATEs and DELETEs on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from strangler.sync import keys
from strangler.sync.sources.pg_options import default_name
from strangler.sync_config import SyncConfig

log = logging.getLogger("strangler.sync")


class CaptureOptions(Protocol):
    """What the plan reads of a source's options (``debezium`` and ``pgoutput``)."""

    @property
    def database(self) -> str: ...
    @property
    def tables(self) -> Sequence[str]: ...
    @property
    def publication(self) -> str | None: ...


@dataclass(frozen=True)
class CapturePlan:
    properties: dict[str, str]
    """Connector properties to set over the derived ones."""
    captured: tuple[str, ...]
    refused: tuple[keys.TableKey, ...] = field(default=())
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """``schema.table`` -> the key strangler relies on, for each safe table checked."""
    publication: str = ""


def declared_keys(sync: SyncConfig, source: str) -> dict[str, tuple[str, ...]]:
    """``schema.table`` (or bare name) -> declared ``source_key`` for this source's tables."""
    return {
        m.source: m.source_key
        for m in sync.tables
        if m.source_key and m.from_source in (None, source)
    }


def plan_capture(
    name: str, options: CaptureOptions, sync: SyncConfig, extra: tuple[str, ...] = ()
) -> CapturePlan:
    """Check the tables, create/extend the publication, and say what to capture.

    ``extra``: strangler's own tables to capture too (the heartbeat), always safe."""
    declared = declared_keys(sync, name)
    wanted = list(options.tables) or [
        t for t in keys.user_tables(options.database) if t not in extra
    ]
    checked = keys.inspect_tables(options.database, wanted, declared)
    refused = tuple(k for k in checked if not k.safe)
    for table in refused:
        log.error("source %s: not capturing %s: %s", name, table.table, table.problem)
    safe = [k.table for k in checked if k.safe] + list(extra)
    publication = options.publication or default_name(name)
    keys.ensure_publication(options.database, publication, safe)
    properties = {
        "publication.autocreate.mode": "disabled",
        "publication.name": publication,
        "table.include.list": ",".join(t.replace(".", "\\.") for t in safe),
    }
    message_keys = [
        f"{k.table}:{','.join(k.key)}"
        for k in checked
        if k.safe and keys.declared_for(declared, k.table)
    ]
    if message_keys:
        properties["message.key.columns"] = ";".join(message_keys)
    found = {k.table: k.key for k in checked if k.safe}
    return CapturePlan(properties, tuple(safe), refused, found, publication)
