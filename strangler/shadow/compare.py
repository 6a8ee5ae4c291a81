"""Comparing the legacy and the new side of one mirrored request.

:class:`Comparator` is built once per route from ``shadow.compare`` (patterns
compiled up front, like a route table) and turns two
:class:`~strangler.shadow.observation.Observation` values into an immutable
:class:`Comparison`: the typed :class:`Difference` list, field by field.

Before comparing, the new side is put in the legacy shape by the route's
response adapter (:func:`adapt`). Status and the compared headers are checked
here; JSON bodies are walked by :mod:`.walk` under the route's compiled rules
(:mod:`.rules`: ignore, lists, value equivalences, per status); other bodies
are compared as bytes with a summary fit for the content type.

Paths read ``status``, ``header.<name>``, ``body.a.b``, ``body.items[3].id``,
``body.items[slug=c].title``; a path's *field* (:func:`field_of`) is the
template mismatch rates, noise and signatures are counted by.

Why not deepdiff: measured in ``bench/compare_diff.py`` on a 25-field document
with one ignore path and a tolerance, DeepDiff takes ~2.7-5 ms per comparison
(it walks every node in Python with per-node path strings and hooks), so 100 %
shadow would need a core for every few hundred requests/s. This walker
(~0.2 ms including parsing both bodies, ~1 µs for byte-identical bodies) skips
equal subtrees with one C-level ``==``, normalises only the branches a rule
names, and reports paths in the config's own syntax.

"Match" is decided here and only here. :meth:`Comparator.glance` is its
shortcut for the pipelined lane: an outcome that shows from the raw answers
without parsing them (a failed side, byte-identical answers), else None —
never an outcome :meth:`Comparator.compare` would not give
(``tests/shadow/test_glance.py`` feeds both the same pairs).

Nothing here does I/O or raises on odd input: junk bodies are differences.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from typing import Any, Protocol

from strangler.adapter import HttpAdapter
from strangler.config import CompareConfig
from strangler.fieldpath import PathTrie, parse
from strangler.message import HttpRequest
from strangler.proxy.headers import HOP_BY_HOP, RawHeaders
from strangler.shadow.difference import Comparison, Difference, Kind, field_of
from strangler.shadow.observation import Observation
from strangler.shadow.outcome import ERROR, MATCH, MISMATCH, Compared
from strangler.shadow.rules import Rules
from strangler.shadow.walk import Walk, ignored

__all__ = [
    "Answered",
    "Comparator",
    "Comparison",
    "Difference",
    "Kind",
    "PathPatterns",
    "adapt",
    "field_of",
]


class PathPatterns:
    """Config paths (``body.items[*].id``, ``body.**.token``) compiled once.

    ``covers(path)`` is true for the path itself and everything below it."""

    def __init__(self, patterns: Iterable[str]) -> None:
        parsed = [parse(p) for p in patterns]
        self._trie: PathTrie[bool] = PathTrie((p, True) for p in parsed if p.root == "body")
        self._headers = frozenset(p.segments[0] for p in parsed if p.root == "header")
        self._query = frozenset(p.segments[0] for p in parsed if p.root == "query")
        self._status = any(p.root == "status" for p in parsed)

    def __bool__(self) -> bool:
        return not self._trie.empty or bool(self._headers or self._query or self._status)

    def covers(self, path: str) -> bool:
        if path.startswith("header."):
            name = path[7:].lower()
            return name in self._headers or "*" in self._headers
        if path.startswith("query."):
            return path[6:] in self._query
        if path == "status":
            return self._status
        return self._trie.covers(path)


class Answered(Protocol):
    """The answer the client got, as raw bytes (what a shadow copy holds)."""

    @property
    def status(self) -> int | None:
        """None when the primary failed."""

    @property
    def response_headers(self) -> RawHeaders: ...
    @property
    def response_body(self) -> bytes: ...


class Comparator:
    """Compares two observations under one route's ``shadow.compare`` settings."""

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self.rules = Rules(config)
        self._glanced = _glanced_headers(self.rules)

    # ------------------------------------------------------------ public

    def compare(
        self, legacy: Observation, new: Observation, noise: Collection[str] = ()
    ) -> Comparison:
        """Legacy vs new (already adapted). ``noise`` is the set of noisy fields."""
        if legacy.failed or new.failed:
            why = new.exception if new.failed else f"legacy failed: {legacy.exception}"
            return Comparison(ERROR, error=why)
        found: list[Difference] = []
        reached: set[str] = set()
        if legacy.status != new.status and not self.rules.ignores_status:
            found.append(Difference("status", "value", legacy.status, new.status))
        self._compare_headers(legacy, new, found)
        self._compare_body(legacy, new, found, reached)
        warns = self.rules.order_warns
        warnings = tuple(d for d in found if warns and d.kind == "order")
        if warnings:
            found = [d for d in found if d.kind != "order"]
        real = tuple(d for d in found if d.field not in noise)
        noisy = tuple(d for d in found if d.field in noise)
        return Comparison(
            MISMATCH if real else MATCH,
            real,
            noisy,
            warnings=warnings,
            reached=frozenset(reached) if reached else frozenset(),
        )

    def glance(
        self, client: Answered, status: int | None, headers: Iterable[RawHeader], body: bytes
    ) -> Compared | None:
        """:meth:`compare`'s outcome when it shows from the raw answers, else None.

        ``client`` is the answer the client got; ``status``, ``headers`` and ``body``
        the other side's raw answer (``status`` None: it failed). A failed side is an
        ``error`` whatever the rules. An answer byte for byte the client's — status,
        body, and the first value of each compared header — is a ``match``: equal
        bytes stay equal under any ignore, replace, unordered or tolerance rule.
        Everything else (and a compared hop-by-hop header, which the observations
        drop) is for :meth:`compare` to decide."""
        mine = client.status
        if mine is None or status is None:
            return ERROR
        if status != mine or body != client.response_body:
            return None
        names = self._glanced
        if names is None:
            return None
        theirs = client.response_headers
        for name, size in names:
            if _first(theirs, name, size) != _first(headers, name, size):
                return None
        return MATCH

    # ------------------------------------------------------------ parts

    def _compare_headers(
        self, legacy: Observation, new: Observation, out: list[Difference]
    ) -> None:
        if self.rules.all_headers_ignored:
            return
        base = self.rules.base
        for name in self.rules.headers:
            a, b = legacy.headers.get(name), new.headers.get(name)
            if a == b or (a is not None and b is not None and base is not None and base.same(a, b)):
                continue
            kind: Kind = "missing" if b is None else "extra" if a is None else "value"
            out.append(Difference(f"header.{name}", kind, a, b))

    def _compare_body(
        self, legacy: Observation, new: Observation, out: list[Difference], reached: set[str]
    ) -> None:
        if legacy.body == new.body:
            return  # equal bytes stay equal under any normalisation
        start = self.rules.trie(legacy.status).start()
        if start and ignored(start):
            reached.update(r.source for r in PathTrie.payloads(start) if r.ignore)
            return
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
                walk = Walk(out, reached)
                walk.walk("body", a, b, start, self.rules.base)
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
        base = self.rules.base
        if textual and base is not None and base.replace:
            a = base.normal(a.decode("utf-8", "replace")).encode()
            b = base.normal(b.decode("utf-8", "replace")).encode()
        if a == b:
            return
        out.append(Difference("body", "value", *_bytes_summary(ctype, a, b, textual)))


RawHeader = tuple[bytes, bytes]


def _glanced_headers(rules: Rules) -> tuple[tuple[bytes, int], ...] | None:
    """The compared header names as :meth:`Comparator.glance` reads them (lower-case
    bytes, length); None when it cannot: a hop-by-hop name (the observations drop
    those on one side and maybe not the other) or a name that is not ASCII (bytes
    and text would not fold its case alike)."""
    if rules.all_headers_ignored:
        return ()
    names = []
    for name in rules.headers:
        if not name.isascii():
            return None
        raw = name.encode()
        if raw in HOP_BY_HOP:
            return None
        names.append((raw, len(raw)))
    return tuple(names)


def _first(headers: Iterable[RawHeader], name: bytes, size: int) -> bytes | None:
    """The first value of ``name`` (lower-case) in raw pairs: what ``headers.get(name)``
    reads once they are decoded into an observation."""
    for key, value in headers:
        if len(key) == size and key.lower() == name:
            return value
    return None


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
