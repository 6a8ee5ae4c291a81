"""What the two sources reading a PostgreSQL slot share in their ``options:``: the
monolith's URL, the captured tables, their validation, and the default name of the
slot and publication. Pure values: nothing here connects anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import ValidationError, field_validator

from strangler.errors import ConfigError, Problem
from strangler.schema import Section


def default_name(source: str) -> str:
    """``strangler_<source>``, anything but letters and digits made ``_``: the default
    slot and publication of a source."""
    return "strangler_" + "".join(c if c.isalnum() else "_" for c in source).lower()


class SlotOptions(Section):
    """The options every slot-reading source has (``debezium``, ``pgoutput``)."""

    database: str
    """The monolith's PostgreSQL, ``postgresql://user:password@host:port/dbname``."""
    tables: tuple[str, ...] = ()
    """``schema.table`` names to capture (every user table when empty)."""

    @field_validator("database")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.split("+")[0] not in ("postgresql", "postgres") or not parts.path.strip(
            "/"
        ):
            raise ValueError(f"{value!r} is not a postgresql://user@host:port/dbname URL")
        return value

    @field_validator("tables")
    @classmethod
    def _qualified(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for table in value:
            if table.count(".") != 1:
                raise ValueError(f"{table!r} must be schema.table, e.g. public.customer")
        return value

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str = "options") -> Self:
        """Validate ``options``; a ``ConfigError`` names each bad key under ``where``."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as exc:
            problems = [
                Problem(".".join([where, *(str(p) for p in err["loc"])]), err["msg"])
                for err in exc.errors()
            ]
            raise ConfigError(problems) from exc
