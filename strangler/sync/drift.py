"""What ``verify`` found, and ``repair``: the drift report and the rewrite of drifting
rows through the sink's normal write path (each row keeps its stored position, so the
next real change still applies). Shared by both directions (``verify.py`` and
``verify_back.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strangler.sync.adapters import AdapterSet
from strangler.sync.codec import key_text
from strangler.sync.compare import Counts, DriftKind, differing, show
from strangler.sync.model import RowDelete, RowUpsert, RowWrite
from strangler.sync.sink import Sink
from strangler.sync_config import SyncConfig


@dataclass(frozen=True)
class Drift:
    target: str
    table: str
    key: Mapping[str, Any]
    kind: DriftKind
    source_table: str
    expected: Mapping[str, Any] | None = None
    actual: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        line = f"{self.kind:9} {self.target}.{self.table} {key_text(self.key)}"
        if self.kind == "different" and self.expected is not None and self.actual is not None:
            diffs = ", ".join(
                f"{c}: {show(self.actual.get(c))} != {show(self.expected[c])}"
                for c in differing(self.expected, self.actual)
            )
            line += f"  ({diffs})"
        if self.kind == "duplicate":
            line += "  (another source row has the same key: the target can hold only one)"
        return line


@dataclass
class Report:
    compared: int = 0
    drift: list[Drift] = field(default_factory=list)
    unmappable: list[str] = field(default_factory=list)
    repaired: int = 0
    rows: dict[str, Counts] = field(default_factory=dict)
    """``target.table`` -> rows read on each side."""

    def count(self, kind: DriftKind) -> int:
        return sum(1 for d in self.drift if d.kind == kind)


def repair_drift(config: SyncConfig, adapters: AdapterSet, drift: Sequence[Drift]) -> int:
    """Rewrite drifting rows through the sink's normal write path (each row keeps its
    stored position); a ``duplicate`` is left: no write makes one row hold two."""
    fixed = 0
    by_target: dict[tuple[str, str], list[RowWrite]] = {}
    for d in drift:
        write: RowWrite
        if d.kind == "duplicate":
            continue  # fix the source's key
        if d.kind == "extra":
            write = RowDelete(d.table, d.key)
        else:
            write = RowUpsert(d.table, d.key, dict(d.expected or {}))
        by_target.setdefault((d.target, d.source_table), []).append(write)
    for (target, source_table), writes in by_target.items():
        sink = Sink.for_target(target, config, adapters)
        try:
            sink.setup()
            fixed += sink.repair(source_table, writes)
        finally:
            sink.close()
    return fixed
