"""``strangler.sync.config``: the ``sync:`` section's models, under their older name.

They live in ``strangler.sync_config`` (top level, so that ``strangler.config`` does
not import the CDC package); the sqlite source's options live with that source.
"""

from strangler.sync.sources.sqlite import SqliteSourceOptions
from strangler.sync_config import (
    CASTS,
    COLUMN_KINDS,
    SOURCE_KINDS,
    ColumnMap,
    ReverseConfig,
    SourceConfig,
    SourceKind,
    SyncConfig,
    TableMapping,
    VerifyConfig,
    options_model,
    valid_kind,
)

__all__ = [
    "CASTS",
    "COLUMN_KINDS",
    "SOURCE_KINDS",
    "ColumnMap",
    "ReverseConfig",
    "SourceConfig",
    "SourceKind",
    "SqliteSourceOptions",
    "SyncConfig",
    "TableMapping",
    "VerifyConfig",
    "options_model",
    "valid_kind",
]
