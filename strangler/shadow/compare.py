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
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal

from strangler.adapter import HttpAdapter
from strangler.config import CompareConfig
from strangler.fieldpath import PathTrie, parse
from strangler.message import HttpRequest
from strangler.shadow.observation import Observation
from strangler.shadow.rules import Nodes, Rule, Rules, Values, effective

Kind = Literal["value", "type", "missing", "extra", "length", "order"]
"""``value`` changed value; ``type`` changed type; ``missing`` on the new side only
absent; ``extra`` only on the new side; ``length`` array length; ``order`` same
elements in another order."""

Outcome = Literal["match", "mismatch", "error"]

_INDEX = re.compile(r"\[[^\]]*\]")
_ID_KEY = re.compile(
    r"\.(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{12,}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{6,})(?=$|[.\[])"
)
_PREVIEW = 300


def field_of(path: str) -> str:
    """``body.items[3].id`` -> ``body.items[*].id``, ``body.items[slug=c].title`` ->
    ``body.items[*].title``, ``body.users.8812.name`` -> ``body.users.<key>.name``:
    the template rates, noise and signatures are kept by (ids never become fields)."""
    if "[" in path:
        path = _INDEX.sub("[*]", path)
    return _ID_KEY.sub(".<key>", path) if any(c.isdigit() for c in path) else path


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
    warnings: tuple[Difference, ...] = ()
    """Differences the route reports without failing the match (``order: warning``)."""
    reached: frozenset[str] = frozenset()
    """Config paths of the rules that applied to a difference here."""


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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


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
        self.rules = Rules(config)

    # ------------------------------------------------------------ public

    def compare(
        self, legacy: Observation, new: Observation, noise: Collection[str] = ()
    ) -> Comparison:
        """Legacy vs new (already adapted). ``noise`` is the set of noisy fields."""
        if legacy.failed or new.failed:
            why = new.exception if new.failed else f"legacy failed: {legacy.exception}"
            return Comparison("error", error=why)
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
            "mismatch" if real else "match",
            real,
            noisy,
            warnings=warnings,
            reached=frozenset(reached) if reached else frozenset(),
        )

    def normalise(self, value: Any, status: int | None = None) -> Any:
        """A body with ignored paths dropped, equivalent values in one form and
        unordered lists sorted: the form list items are matched by."""
        trie = self.rules.trie(status)
        return _normal(value, trie.start(), self.rules.base)

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
        if start and _ignored(start):
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
                walk = _Walk(out, reached)
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


class _Walk:
    """One body comparison: walks both documents with the rules in force."""

    __slots__ = ("out", "reached")

    def __init__(self, out: list[Difference], reached: set[str]) -> None:
        self.out = out
        self.reached = reached

    def ignored(self, nodes: Nodes) -> bool:
        """Some rule ignores this point (and that rule is noted as applied)."""
        hits = [r.source for n in nodes for r in n.payloads if r.ignore]
        if hits:
            self.reached.update(hits)
        return bool(hits)

    def walk(self, path: str, a: Any, b: Any, nodes: Nodes, values: Values | None) -> None:
        # Equal subtrees are skipped with one C-level comparison; only the parts
        # that differ are walked (the type check keeps true == 1 a difference).
        if type(a) is type(b) and a == b:
            return
        here = PathTrie.payloads(nodes) if nodes else []
        if here:
            values = effective(values, here)
            self.reached.update(r.source for r in here)
        if isinstance(a, dict) and isinstance(b, dict):
            self._dict(path, a, b, nodes, values)
        elif isinstance(a, list) and isinstance(b, list):
            self._list(path, a, b, nodes, values, here)
        elif values is not None and values.same(a, b):
            return
        elif _type_name(a) != _type_name(b):
            self.out.append(Difference(path, "type", a, b))
        else:
            self.out.append(Difference(path, "value", a, b))

    def _dict(
        self, path: str, a: dict[str, Any], b: dict[str, Any], nodes: Nodes, values: Values | None
    ) -> None:
        out = self.out
        step = PathTrie.step
        for key, value in a.items():
            if key in b:
                other = b[key]
                if type(value) is type(other) and value == other:
                    continue  # equal: no rule needed (nor noted as applied)
            below = step(nodes, key, "*") if nodes else nodes
            if below and self.ignored(below):
                continue
            if key in b:
                self.walk(f"{path}.{key}", value, b[key], below, values)
            elif not _absent_ok(value, below, values):
                out.append(Difference(f"{path}.{key}", "missing", value, None))
        for key, value in b.items():
            if key in a:
                continue
            below = step(nodes, key, "*") if nodes else nodes
            if below and self.ignored(below):
                continue
            if not _absent_ok(value, below, values):
                out.append(Difference(f"{path}.{key}", "extra", None, value))

    def _list(
        self,
        path: str,
        a: list[Any],
        b: list[Any],
        nodes: Nodes,
        values: Values | None,
        here: list[Rule],
    ) -> None:
        key = next((r.match_by for r in here if r.match_by), None)
        if key is not None and self._keyed(path, a, b, nodes, values, key):
            return
        items = PathTrie.step(nodes, "[*]", "[*]") if nodes else nodes
        if items and self.ignored(items):
            return
        if any(r.unordered for r in here):
            ka = [_item_key(x, items, values) for x in a]
            kb = [_item_key(x, items, values) for x in b]
            self._multiset(path, a, b, ka, kb, nodes, values)
            return
        if len(a) == len(b):
            # Same length: items compared in place (one C-level == each); only the
            # changed ones are normalised, to tell a reordering from changes.
            changed = [i for i in range(len(a)) if type(a[i]) is not type(b[i]) or a[i] != b[i]]
            if len(changed) > 1:
                ca = [_item_key(a[i], items, values) for i in changed]
                cb = [_item_key(b[i], items, values) for i in changed]
                if ca != cb and sorted(ca) == sorted(cb):
                    self.out.append(Difference(path, "order", a, b))
                    return
            if len(changed) <= 2:
                for i in changed:
                    self._pair(path, i, a[i], b[i], nodes, values)
                return
            # Many changed positions: maybe one item out and another in (a shift).
            first, last = changed[0], changed[-1] + 1
            ka = [_item_key(x, items, values) for x in a[first:last]]
            kb = [_item_key(x, items, values) for x in b[first:last]]
            self._aligned(path, a, b, ka, kb, first, nodes, values)
            return
        # Lengths differ: the common head and tail are skipped with ==, the middle is
        # aligned on its longest common subsequence.
        start, end_a, end_b = 0, len(a), len(b)
        while start < end_a and start < end_b and a[start] == b[start]:
            start += 1
        while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
            end_a -= 1
            end_b -= 1
        ka = [_item_key(x, items, values) for x in a[start:end_a]]
        kb = [_item_key(x, items, values) for x in b[start:end_b]]
        self._aligned(path, a, b, ka, kb, start, nodes, values)

    def _pair(self, path: str, i: int, a: Any, b: Any, nodes: Nodes, values: Values | None) -> None:
        below = PathTrie.step(nodes, f"[{i}]", "[*]") if nodes else nodes
        self.walk(f"{path}[{i}]", a, b, below, values)

    def _keyed(
        self,
        path: str,
        a: list[Any],
        b: list[Any],
        nodes: Nodes,
        values: Values | None,
        key: str,
    ) -> bool:
        """Items aligned by ``key``; False (not done) when some item has no key or
        keys repeat, which then falls back to alignment by content."""
        ka = [_key_of(x, key) for x in a]
        kb = [_key_of(x, key) for x in b]
        if None in ka or None in kb or len(set(ka)) < len(ka) or len(set(kb)) < len(kb):
            return False
        by_b = {k: i for i, k in enumerate(kb)}
        by_a = {k: i for i, k in enumerate(ka)}
        out = self.out
        step = PathTrie.step
        for i, k in enumerate(ka):
            at = f"{path}[{key}={k}]"
            below = step(nodes, f"[{i}]", "[*]") if nodes else nodes
            j = by_b.get(k)
            if j is None:
                out.append(Difference(at, "missing", a[i], None))
            else:
                self.walk(at, a[i], b[j], below, values)
        for j, k in enumerate(kb):
            if k not in by_a:
                out.append(Difference(f"{path}[{key}={k}]", "extra", None, b[j]))
        common_a = [k for k in ka if k in by_b]
        common_b = [k for k in kb if k in by_a]
        if common_a != common_b:
            out.append(Difference(path, "order", common_a, common_b))
        return True

    def _multiset(
        self,
        path: str,
        a: list[Any],
        b: list[Any],
        ka: list[str],
        kb: list[str],
        nodes: Nodes,
        values: Values | None,
    ) -> None:
        left: dict[str, list[int]] = {}
        for i in range(len(ka) - 1, -1, -1):  # reversed: pop() takes the earliest
            left.setdefault(ka[i], []).append(i)
        extra: list[int] = []
        for j, k in enumerate(kb):
            spare = left.get(k)
            if spare:
                spare.pop()
            else:
                extra.append(j)
        missing = sorted(i for spare in left.values() for i in spare)
        self._leftovers(path, a, b, missing, extra, nodes, values)

    def _aligned(
        self,
        path: str,
        a: list[Any],
        b: list[Any],
        ka: list[str],
        kb: list[str],
        start: int,
        nodes: Nodes,
        values: Values | None,
    ) -> None:
        """Positions aligned on the longest common subsequence, so an inserted or
        missing item is one difference, not a shift of every later one."""
        matcher = SequenceMatcher(None, ka, kb, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op != "equal":
                missing = list(range(start + i1, start + i2))
                extra = list(range(start + j1, start + j2))
                self._leftovers(path, a, b, missing, extra, nodes, values)

    def _leftovers(
        self,
        path: str,
        a: list[Any],
        b: list[Any],
        missing: list[int],
        extra: list[int],
        nodes: Nodes,
        values: Values | None,
    ) -> None:
        """Unmatched items: paired in order (a changed item reports its own fields),
        the rest one difference each."""
        pairs = min(len(missing), len(extra))
        for i, j in zip(missing[:pairs], extra[:pairs], strict=True):
            self._pair(path, i, a[i], b[j], nodes, values)
        for i in missing[pairs:]:
            self.out.append(Difference(f"{path}[{i}]", "missing", a[i], None))
        for j in extra[pairs:]:
            self.out.append(Difference(f"{path}[{j}]", "extra", None, b[j]))


def _ignored(nodes: Nodes) -> bool:
    return any(r.ignore for n in nodes for r in n.payloads)


def _absent_ok(value: Any, below: Nodes, values: Values | None) -> bool:
    """A key present on one side only is no difference when ``absent`` is equated
    with its value (``equal: [null, "", absent]`` and the value is null or "")."""
    if below:
        values = effective(values, PathTrie.payloads(below))
    return values is not None and values.absent and (value is None or values.blank(value))


def _key_of(item: Any, key: str) -> str | None:
    if not isinstance(item, dict):
        return None
    value = item.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _item_key(item: Any, nodes: Nodes, values: Values | None) -> str:
    """A list item's normal form as text: equal under the rules, equal keys."""
    if not nodes and values is None:
        return _canonical(item)
    return _canonical(_normal(item, nodes, values))


def _normal(value: Any, nodes: Nodes, values: Values | None) -> Any:
    if nodes:
        here = PathTrie.payloads(nodes)
        if here:
            values = effective(values, here)
    if not nodes and values is None:
        return value
    step = PathTrie.step
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            below = step(nodes, key, "*") if nodes else nodes
            if below and _ignored(below):
                continue
            normal = _normal(item, below, values)
            if normal is None and values is not None and values.absent:
                continue
            out[key] = normal
        return out
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            below = step(nodes, f"[{i}]", "[*]") if nodes else nodes
            if below and _ignored(below):
                continue
            items.append(_normal(item, below, values))
        if nodes and any(r.unordered for r in PathTrie.payloads(nodes)):
            items.sort(key=_canonical)
        return items
    return values.normal(value) if values is not None else value


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
