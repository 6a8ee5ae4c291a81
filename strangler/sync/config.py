"""The ``sync:`` section of routes.yaml: CDC sources, target databases, table mappings.

PLACEHOLDER written by the lead so config.py imports; the CDC owner replaces it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    name: str
    kind: Literal["kafka", "debezium", "sqlite"]
    options: dict[str, Any] = {}


class TableMapping(_Model):
    source: str
    target: str
    adapter: str | dict[str, Any]


class SyncConfig(_Model):
    listen: str = "127.0.0.1:8082"
    sources: tuple[SourceConfig, ...] = ()
    targets: dict[str, str] = {}
    tables: tuple[TableMapping, ...] = ()
    batch_size: int = Field(500, ge=1)
