"""Comparing the legacy and the new side of one mirrored request.

:class:`Comparator` is built once per route from ``shadow.compare`` (patterns
compiled up front, like a route table) and turns two
:class:`~strangler.shadow.observation.Observation` values into an immutable
:class:`Comparison`: the typed :class:`Difference` list, field by field.

Before comparing, the new side is put in the legacy shape by the route's
response adapter (:func:`adapt`), then both sides are normalised the same way:
``ignore`` paths are dropped, ``replace`` rules rewrite volatile strings,
``unordered`` arrays are sorted; numbers are equal within ``tolerance``.

Paths read ``status``, ``header.<name>``, ``body.a.b``, ``body.items[3].id``;
a path's *field* generalises indexes (``body.items[*].id``) and is what
mismatch rates and noise are counted by.

Why not deepdiff: measured in ``bench/compare_diff.py`` on a 25-field document
with one ignore path and a tolerance, DeepDiff takes ~2.7-5 ms per comparison
(it walks every node in Python with per-node path strings and hooks), so 100 %
shadow would need a core for every few hundred requests/s. This walker
(~0.2 ms including parsing both bodies, ~1 µs for byte-identical bodies) skips
equal subtrees with one C-level ``==``, normalises only the branches a rule
names, and reports paths in the config's own syntax.

Nothing here does I/O or raises on odd input: junk bodies are differences.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from strangler.adapter import HttpAdapter
from strangler.config import CompareConfig
from strangler.message import HttpRequest
from strangler.shadow.observation import Observation

Kind = Literal["value", "type", "missing", "extra", "length", "order"]
"""``value`` changed value; ``type`` changed type; ``missing`` on the new side only
absent; ``extra`` only on the new side; ``length`` array length; ``order`` same
elements in another order."""

Outcome = Literal["match", "mismatch", "error"]

_INDEX = re.compile(r"\[\d+\]")
_PREVIEW = 300


def field_of(path: str) -> str:
    """``body.items[3].id`` -> ``body.items[*].id``: what rates and noise are kept by."""
    return _INDEX.sub("[*]", path)


def _preview(value: Any) -> Any:
    """Keep small values as they are; long ones as a truncated JSON string."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= _PREVIEW else value[:_PREVIEW]
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    kind: Kind
    legacy: Any = None
    new: Any = None

    @property
    def field(self) -> str:
        return field_of(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "field": self.field,
            "kind": self.kind,
            "legacy": _preview(self.legacy),
            "new": _preview(self.new),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """The result of one comparison. ``noise`` holds differences on known-noisy fields."""

    outcome: Outcome
    differences: tuple[Difference, ...] = ()
    noise: tuple[Difference, ...] = ()
    error: str | None = None


class PathPatterns:
    """Config paths (``body.items[*].id``) compiled into one regex.

    ``covers(path)`` is true for the path itself and everything below it."""

    def __init__(self, patterns: Iterable[str]) -> None:
        parts = [self._regex(p) for p in patterns]
        self._re = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    @staticmethod
    def _regex(pattern: str) -> str:
        out = re.escape(pattern).replace(r"\[\*\]", r"\[\d+\]").replace(r"\*", r"[^.\[]+")
        return out + r"(?=$|[.\[])"

    def __bool__(self) -> bool:
        return self._re is not None

    def covers(self, path: str) -> bool:
        return self._re is not None and self._re.match(path) is not None

    def is_exactly(self, path: str) -> bool:
        return self._re is not None and self._re.fullmatch(path) is not None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class Comparator:
    """Compares two observations under one route's ``shadow.compare`` settings."""

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self._ignore = PathPatterns(config.ignore)
        self._rules = _RuleNode.build(config.ignore, config.unordered)
        self._replace = [(re.compile(r.pattern), r.replace) for r in config.replace]
        self._tolerance = config.tolerance
        self._headers = tuple(h.lower() for h in config.headers)

    # ------------------------------------------------------------ public

    def compare(
        self, legacy: Observation, new: Observation, noise: Collection[str] = ()
    ) -> Comparison:
        """Legacy vs new (already adapted). ``noise`` is the set of noisy fields."""
        if legacy.failed or new.failed:
            why = new.exception if new.failed else f"legacy failed: {legacy.exception}"
            return Comparison("error", error=why)
        found: list[Difference] = []
        if legacy.status != new.status:
            found.append(Difference("status", "value", legacy.status, new.status))
        self._compare_headers(legacy, new, found)
        self._compare_body(legacy, new, found)
        real = tuple(d for d in found if d.field not in noise)
        noisy = tuple(d for d in found if d.field in noise)
        return Comparison("mismatch" if real else "match", real, noisy)

    def normalise(self, value: Any) -> Any:
        """A body with ignored paths dropped, replacements applied and unordered
        arrays sorted: what is actually compared. Subtrees no rule reaches are
        returned as they are, without being walked."""
        return self._normalise(value, (self._rules,))

    def _normalise(self, value: Any, nodes: tuple[_RuleNode, ...]) -> Any:
        if not nodes and not self._replace:
            return value
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                below = _step(nodes, key, "*")
                if not below:
                    out[key] = self._normalise(item, below) if self._replace else item
                elif not any(n.ignore for n in below):
                    out[key] = self._normalise(item, below)
            return out
        if isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                below = _step(nodes, f"[{i}]", "[*]")
                if not below:
                    items.append(self._normalise(item, below) if self._replace else item)
                elif not any(n.ignore for n in below):
                    items.append(self._normalise(item, below))
            if any(n.unordered for n in nodes):
                items.sort(key=_canonical)
            return items
        if isinstance(value, str) and self._replace:
            return self._replaced(value)
        return value

    # ------------------------------------------------------------ parts

    def _replaced(self, text: str) -> str:
        for pattern, replacement in self._replace:
            text = pattern.sub(replacement, text)
        return text

    def _compare_headers(
        self, legacy: Observation, new: Observation, out: list[Difference]
    ) -> None:
        for name in self._headers:
            path = f"header.{name}"
            if self._ignore and self._ignore.covers(path):
                continue
            a, b = legacy.headers.get(name), new.headers.get(name)
            a = self._replaced(a) if a is not None else None
            b = self._replaced(b) if b is not None else None
            if a == b:
                continue
            kind: Kind = "missing" if b is None else "extra" if a is None else "value"
            out.append(Difference(path, kind, a, b))

    def _compare_body(self, legacy: Observation, new: Observation, out: list[Difference]) -> None:
        if self._ignore and self._ignore.covers("body"):
            return
        if legacy.body == new.body:
            return  # equal bytes stay equal under any normalisation
        json_like = (
            "json"
            in (
                legacy.headers.get("content-type", "") + new.headers.get("content-type", "")
            ).lower()
        )
        if json_like:
            a, a_ok = _parse(legacy.body)
            b, b_ok = _parse(new.body)
            if a_ok and b_ok:
                self._walk("body", self.normalise(a), self.normalise(b), out)
                return
            if a_ok != b_ok:
                out.append(
                    Difference(
                        "body",
                        "type",
                        "JSON" if a_ok else _summary_value(legacy.body),
                        "JSON" if b_ok else _summary_value(new.body),
                    )
                )
                return
        self._compare_bytes(legacy, new, out)

    def _compare_bytes(self, legacy: Observation, new: Observation, out: list[Difference]) -> None:
        a, b = legacy.body, new.body
        ctype = (
            legacy.headers.get("content-type") or new.headers.get("content-type") or ""
        ).lower()
        textual = ctype.startswith("text/") or any(
            t in ctype for t in ("xml", "html", "javascript", "csv", "yaml", "form-urlencoded")
        )
        if textual and self._replace:
            a = self._replaced(a.decode("utf-8", "replace")).encode()
            b = self._replaced(b.decode("utf-8", "replace")).encode()
        if a == b:
            return
        out.append(Difference("body", "value", *_bytes_summary(ctype, a, b, textual)))

    def _walk(self, path: str, a: Any, b: Any, out: list[Difference]) -> None:
        # Equal subtrees are skipped with one C-level comparison; only the parts
        # that differ are walked (the type check keeps true == 1 a difference).
        if type(a) is type(b) and a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key, value in a.items():
                if key in b:
                    self._walk(f"{path}.{key}", value, b[key], out)
                else:
                    out.append(Difference(f"{path}.{key}", "missing", value, None))
            for key, value in b.items():
                if key not in a:
                    out.append(Difference(f"{path}.{key}", "extra", None, value))
            return
        if isinstance(a, list) and isinstance(b, list):
            common = min(len(a), len(b))
            changed = [i for i in range(common) if type(a[i]) is not type(b[i]) or a[i] != b[i]]
            if len(a) != len(b):
                out.append(Difference(path, "length", len(a), len(b)))
            elif len(changed) > 1 and sorted(_canonical(a[i]) for i in changed) == sorted(
                _canonical(b[i]) for i in changed
            ):
                # Equal positions cancel out: a permutation of the changed ones is
                # a permutation of the whole array.
                out.append(Difference(path, "order", a, b))
                return
            for i in changed:
                self._walk(f"{path}[{i}]", a[i], b[i], out)
            return
        kind_a, kind_b = _type_name(a), _type_name(b)
        if kind_a != kind_b:
            out.append(Difference(path, "type", a, b))
        elif kind_a == "number" and self._tolerance:
            if not math.isclose(a, b, rel_tol=self._tolerance, abs_tol=self._tolerance):
                out.append(Difference(path, "value", a, b))
        elif a != b:
            out.append(Difference(path, "value", a, b))


class _RuleNode:
    """A trie of ``ignore``/``unordered`` body paths, by segment (``key``, ``[3]``,
    ``[*]``, ``*``), so normalising follows only the branches a rule names."""

    __slots__ = ("children", "ignore", "unordered")

    def __init__(self) -> None:
        self.children: dict[str, _RuleNode] = {}
        self.ignore = False
        self.unordered = False

    @classmethod
    def build(cls, ignore: Iterable[str], unordered: Iterable[str]) -> _RuleNode:
        root = cls()
        for paths, flag in ((ignore, "ignore"), (unordered, "unordered")):
            for path in paths:
                if not path.startswith("body") or path == "body":
                    continue  # header.* rules and "the whole body" are handled elsewhere
                node = root
                for token in _SEGMENT.findall(path[4:]):
                    key = token[0] or f"[{token[1]}]"
                    node = node.children.setdefault(key, cls())
                setattr(node, flag, True)
        return root


_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\*|\d+)\]")


_NO_RULES: tuple[_RuleNode, ...] = ()


def _step(nodes: tuple[_RuleNode, ...], key: str, wildcard: str) -> tuple[_RuleNode, ...]:
    found: list[_RuleNode] = []
    for node in nodes:
        children = node.children
        if children:
            child = children.get(key)
            if child is not None:
                found.append(child)
            child = children.get(wildcard)
            if child is not None:
                found.append(child)
    return tuple(found) if found else _NO_RULES


def _parse(body: bytes) -> tuple[Any, bool]:
    if not body.strip():
        return None, True
    try:
        return json.loads(body), True
    except ValueError:
        return None, False


def _summary_value(body: bytes) -> str:
    return f"{len(body)} bytes, not JSON"


def _bytes_summary(ctype: str, a: bytes, b: bytes, textual: bool) -> tuple[str, str]:
    """Human summaries of two differing bodies, shaped by the content type."""
    label = ctype.split(";")[0].strip() or "body"
    if textual:
        left = a.decode("utf-8", "replace").splitlines()
        right = b.decode("utf-8", "replace").splitlines()
        for line, (x, y) in enumerate(zip(left, right, strict=False), start=1):
            if x != y:
                return (f"{label} line {line}: {x[:120]}", f"{label} line {line}: {y[:120]}")
        line = min(len(left), len(right)) + 1
        return (f"{label}: {len(left)} lines", f"{label}: {len(right)} lines (from line {line})")
    offset = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return (
        f"{label}: {len(a)} bytes, sha256 {hashlib.sha256(a).hexdigest()[:12]}, "
        f"first difference at byte {offset}",
        f"{label}: {len(b)} bytes, sha256 {hashlib.sha256(b).hexdigest()[:12]}",
    )


def adapt(adapter: HttpAdapter | None, request: HttpRequest, new: Observation) -> Observation:
    """The new side in the legacy shape, by the route's response adapter.

    An adapter that raises makes the observation failed (counted as ``error``):
    a broken adapter is the new side's problem, never a crash of the comparison."""
    if adapter is None or new.failed:
        return new
    try:
        return new.with_response(adapter.response(request, new.response()))
    except Exception as exc:
        return Observation.failure(new.side, new.upstream, f"adapter: {exc!r}", new.duration)
