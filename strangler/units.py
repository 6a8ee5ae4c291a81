"""Human units in routes.yaml: durations (``2s``, ``500ms``, ``1m``) and sizes (``1MiB``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?\s*$", re.IGNORECASE)
_SIZE_SCALE = {
    None: 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(value: Any) -> float:
    """Seconds from ``2s``, ``500ms``, ``1.5m``, ``1h`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use e.g. 2s or 500ms)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration (use e.g. 2s or 500ms)")
        seconds = float(match.group(1)) * _DURATION_SCALE[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from ``1MiB``, ``64k``, ``1000`` (bare numbers are bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size (use e.g. 1MiB or 64KiB)")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size (use e.g. 1MiB or 64KiB)")
        unit = match.group(2).lower() if match.group(2) else None
        size = int(match.group(1)) * _SIZE_SCALE[unit]
    if size < 0:
        raise ValueError(f"{value!r} is negative")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in routes.yaml as ``2s``, ``500ms``, ``1m``."""

Size = Annotated[int, BeforeValidator(parse_size)]
"""Bytes, written in routes.yaml as ``1MiB``, ``64KiB``, ``1000``."""
