"""The ``shadow:`` block of a route in routes.yaml, as immutable validated values.

``compare`` (what counts as the same answer: paths to ignore, lists to align,
per-path value rules), ``mirror`` (how the mirrored request is rewritten for
the side it goes to: headers, query parameters, a hook) and redaction. Every
path is parsed by :mod:`strangler.fieldpath` when the config loads, so
``strangler check`` names the rule and what is wrong with it. Re-exported by
``strangler.config``; nothing here reads the environment or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from strangler.fieldpath import PathError, check, parse
from strangler.schema import Section as _Model
from strangler.units import Duration, Size

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

ABSENT = "absent"
"""In ``equal:``, the key not being there at all."""


def methods(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Upper-cased HTTP methods, or ValueError naming the one that is not."""
    if value is None:
        return None
    upper = tuple(m.upper() for m in value)
    for method in upper:
        if method not in HTTP_METHODS:
            raise ValueError(f"{method!r} is not an HTTP method")
    return upper


def _paths(value: tuple[str, ...]) -> tuple[str, ...]:
    problems = []
    for path in value:
        try:
            check((path,))
        except PathError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return value


class ReplaceRule(_Model):
    """A regex replacement applied to both sides before comparing (volatile values)."""

    pattern: str
    replace: str = "<volatile>"

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value


_PRECISIONS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


class TimestampRule(_Model):
    """Compare as instants: ``precision`` truncates both, ``tolerance`` allows a gap."""

    precision: Literal["s", "ms", "us"] = "ms"
    tolerance: Duration = 0.0

    @property
    def step(self) -> float:
        return _PRECISIONS[self.precision]


class CompareRule(_Model):
    """Value rules for the paths named (and everything below them).

    ``status`` limits the rule to answers whose legacy status is listed
    (``404``, ``4xx``, ``500-599``)."""

    path: tuple[str, ...]
    status: tuple[str, ...] = ()
    ignore: bool = False
    unordered: bool = False
    match_by: str | None = None
    equal: tuple[Any, ...] = ()
    """Values that count as one value: any of ``null``, ``""``, ``absent``, ``[]``, ``{}``."""
    numeric_strings: bool = False
    """``42`` equals ``"42"``."""
    timestamp: TimestampRule | None = None
    tolerance: float | None = Field(None, ge=0)
    """Absolute numeric tolerance."""
    relative_tolerance: float | None = Field(None, ge=0)

    @field_validator("path", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("names no path")
        return _paths(value)

    @field_validator("status")
    @classmethod
    def _status(cls, value: tuple[Any, ...]) -> tuple[str, ...]:
        out = tuple(str(v).lower() for v in value)
        for item in out:
            if not re.fullmatch(r"[1-5](\d\d|xx)|[1-5]\d\d-[1-5]\d\d", item):
                raise ValueError(f"{item!r} is not a status, a class like 4xx or a range 500-599")
        return out

    @field_validator("equal")
    @classmethod
    def _equal(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        for item in value:
            if item not in (None, "", ABSENT, [], {}):
                raise ValueError(f'{item!r} cannot be equated: use null, "", absent, [] or {{}}')
        if len(value) == 1:
            raise ValueError("equal needs two or more values, e.g. [null, '', absent]")
        return value

    @model_validator(mode="after")
    def _does_something(self) -> CompareRule:
        if not (
            self.ignore
            or self.unordered
            or self.match_by
            or self.equal
            or self.numeric_strings
            or self.timestamp
            or self.tolerance is not None
            or self.relative_tolerance is not None
        ):
            raise ValueError(
                "does nothing: give ignore, unordered, match_by, equal, numeric_strings, "
                "timestamp, tolerance or relative_tolerance"
            )
        return self

    def applies_to(self, status: int | None) -> bool:
        if not self.status:
            return True
        if status is None:
            return False
        for item in self.status:
            if item.endswith("xx") and str(status)[0] == item[0]:
                return True
            low, _, high = item.partition("-")
            if high and int(low) <= status <= int(high):
                return True
            if not high and not item.endswith("xx") and int(item) == status:
                return True
        return False


class CompareConfig(_Model):
    ignore: tuple[str, ...] = ()
    unordered: tuple[str, ...] = ()
    tolerance: float = Field(0.0, ge=0)
    headers: tuple[str, ...] = ("content-type",)
    replace: tuple[ReplaceRule, ...] = ()
    match_by: Mapping[str, str] = {}
    """List path -> key field: items are aligned by that key, not by position."""
    order: Literal["mismatch", "warning"] = "mismatch"
    """An order-only change of a list: a mismatch, or a warning that still matches."""
    rules: tuple[CompareRule, ...] = ()

    @field_validator("ignore", "unordered")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _paths(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.lower() for h in value)

    @field_validator("match_by")
    @classmethod
    def _match_by(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for path, key in value.items():
            try:
                root = parse(path).root
            except PathError as exc:
                raise ValueError(str(exc)) from None
            if root != "body":
                raise ValueError(f"{path!r}: match_by names a list in the body")
            if not key or not isinstance(key, str):
                raise ValueError(f"{path!r}: the key is a field name of the items, e.g. id")
        return value

    def __hash__(self) -> int:  # the comparator cache is keyed by config
        return hash(self.model_dump_json())


class RewriteConfig(_Model):
    """Set, remove and rename names (headers or query parameters)."""

    set: Mapping[str, str] = {}
    remove: tuple[str, ...] = ()
    rename: Mapping[str, str] = {}


class MirrorConfig(_Model):
    """How a mirrored request is changed for the side it is mirrored to (identity)."""

    headers: RewriteConfig = RewriteConfig()
    query: RewriteConfig = RewriteConfig()
    hook: str | None = None
    """``package.module:name``: an async callable ``(HttpRequest) -> HttpRequest`` (or a
    class whose instances are) for what cannot be declared: credentials, id lookups."""

    @field_validator("hook")
    @classmethod
    def _hook(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"{value!r} is not an import path like package.module:Name")
        return value


class ShadowConfig(_Model):
    percent: float = Field(100.0, ge=0, le=100)
    methods: tuple[str, ...] = ("GET", "HEAD")
    max_body: Size = 1024 * 1024
    max_in_flight: int = Field(64, ge=1)
    noise_percent: float = Field(0.0, ge=0, le=100)
    redact: tuple[str, ...] = ()
    """More paths never stored (``body.**.ssn``, ``header.x-session``, ``query.sig``);
    secret-like names are redacted anyway."""
    reveal: tuple[str, ...] = ()
    """Names the default redaction would hide that may be stored in clear."""
    compare: CompareConfig = CompareConfig()
    mirror: MirrorConfig | None = None
    max_fields: int = Field(500, ge=10)
    """Distinct field paths counted per route; beyond it one overflow bucket counts."""

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return methods(value) or ()

    @field_validator("redact")
    @classmethod
    def _redact(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A bare name (``ssn``) means that key anywhere, as the defaults do.
        return _paths(tuple(v if "." in v or v == "body" else f"body.**.{v}" for v in value))


DEFAULT_SHADOW = ShadowConfig()
"""What a route in ``shadow`` mode without a ``shadow:`` block gets."""
