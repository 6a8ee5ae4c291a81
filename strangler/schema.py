"""What every routes.yaml model shares: frozen values, unknown keys rejected, listen
addresses and names.

The main file (``strangler.config``), the ``sync:`` section and each CDC source's
``options:`` all build on :class:`Section`, so a misspelt key is an error
everywhere, and a loaded config can never be changed in place.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every routes.yaml model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def listen_address(value: str) -> str:
    """Validate ``host:port`` (``127.0.0.1:8081``, ``[::1]:8081``, ``0.0.0.0:0``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8081)")
    return value


Listen = Annotated[str, AfterValidator(listen_address)]
"""A ``listen:`` field: ``host:port``."""


def plain_name(value: str) -> str:
    """Validate a name that appears in URLs, metrics and files (a route's, a source's)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise ValueError(f"{value!r} may only use letters, digits, '_', '.', '-'")
    return value


Name = Annotated[str, AfterValidator(plain_name)]
"""A ``name:`` field of letters, digits, ``_``, ``.`` and ``-``."""
