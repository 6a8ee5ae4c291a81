"""Walking two JSON documents side by side under a route's compiled rules.

:class:`Walk` reports typed :class:`~strangler.shadow.difference.Difference` values
for the parts that differ: equal subtrees are skipped with one C-level ``==``;
dicts key by key; lists aligned by ``match_by`` key, as a multiset
(``unordered``), in place (same length) or on their longest common
subsequence, so one missing item is one difference; leaves under the value
rules in force (:mod:`.rules`). It notes which rules applied. :func:`normal`
is the normal form list items are matched by. Nothing here does I/O.
"""

from __future__ import annotations

import json
from difflib import SequenceMatcher
from typing import Any

from strangler.fieldpath import PathTrie
from strangler.shadow.difference import Difference
from strangler.shadow.rules import Nodes, Rule, Values, effective


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


class Walk:
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


def ignored(nodes: Nodes) -> bool:
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
    return _canonical(normal(item, nodes, values))


def normal(value: Any, nodes: Nodes, values: Values | None) -> Any:
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
            if below and ignored(below):
                continue
            form = normal(item, below, values)
            if form is None and values is not None and values.absent:
                continue
            out[key] = form
        return out
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            below = step(nodes, f"[{i}]", "[*]") if nodes else nodes
            if below and ignored(below):
                continue
            items.append(normal(item, below, values))
        if nodes and any(r.unordered for r in PathTrie.payloads(nodes)):
            items.sort(key=_canonical)
        return items
    return values.normal(value) if values is not None else value
