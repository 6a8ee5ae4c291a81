"""A runtime override of one route's mode and percent, as held by the state store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from strangler.config import Mode

OverrideSource = Literal["override", "auto-rollback"]


@dataclass(frozen=True)
class Override:
    mode: Mode
    percent: float | None = None
    source: OverrideSource = "override"
    reason: str | None = None
    by: str | None = None
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Override:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
