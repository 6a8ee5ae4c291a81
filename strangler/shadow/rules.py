"""The comparison rules of one route, compiled: what each body path is allowed.

:class:`Rules` turns ``shadow.compare`` into a :class:`~strangler.fieldpath.PathTrie`
of :class:`Rule` payloads per answer status (rules limited to some statuses,
e.g. error bodies, join only for those), plus the header set. :class:`Values`
is the merged value rules in force at one point of a document (they apply at
the path named and below it): :meth:`Values.same` decides two leaves equal
under equivalences (``null`` ≡ ``""`` ≡ absent, ``42`` ≡ ``"42"``), timestamps
as instants (precision, tolerance) and numeric tolerance; :meth:`Values.normal`
is the one normal form a leaf takes, so list items can be matched by hash.

Nothing here does I/O or raises on odd input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strangler.config import CompareConfig, CompareRule
from strangler.fieldpath import PathNode, PathTrie, parse
from strangler.shadow_config import ABSENT

Nodes = tuple[PathNode["Rule"], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """What one path of the config says (a payload in the trie)."""

    ignore: bool = False
    unordered: bool = False
    match_by: str | None = None
    values: Values | None = None
    source: str = ""
    """The path as the config writes it (to say which rules ever applied)."""


_EMPTY_VALUES: tuple[Any, ...] = (None, "", [], {})


@dataclass(frozen=True, slots=True)
class Values:
    """Value rules in force at one point (merged from every rule reaching it)."""

    equal: tuple[Any, ...] = ()
    absent: bool = False
    numeric_strings: bool = False
    timestamp_step: float = 0.0
    timestamp_tolerance: float = 0.0
    timestamps: bool = False
    tolerance: float = 0.0
    relative: float = 0.0
    replace: tuple[tuple[re.Pattern[str], str], ...] = field(default=())

    @classmethod
    def of(cls, rule: CompareRule) -> Values:
        return cls(
            equal=tuple(v for v in rule.equal if v != ABSENT),
            absent=ABSENT in rule.equal,
            numeric_strings=rule.numeric_strings,
            timestamps=rule.timestamp is not None,
            timestamp_step=rule.timestamp.step if rule.timestamp else 0.0,
            timestamp_tolerance=rule.timestamp.tolerance if rule.timestamp else 0.0,
            tolerance=rule.tolerance or 0.0,
            relative=rule.relative_tolerance or 0.0,
        )

    def merged(self, other: Values) -> Values:
        return Values(
            equal=self.equal + tuple(v for v in other.equal if v not in self.equal),
            absent=self.absent or other.absent,
            numeric_strings=self.numeric_strings or other.numeric_strings,
            timestamps=self.timestamps or other.timestamps,
            timestamp_step=max(self.timestamp_step, other.timestamp_step),
            timestamp_tolerance=max(self.timestamp_tolerance, other.timestamp_tolerance),
            tolerance=max(self.tolerance, other.tolerance),
            relative=max(self.relative, other.relative),
            replace=self.replace or other.replace,
        )

    # ------------------------------------------------------------ leaves

    def blank(self, value: Any) -> bool:
        """``value`` is one of the values this rule equates (``null``, ``""`` ...)."""
        return bool(self.equal) and any(type(value) is type(e) and value == e for e in self.equal)

    def normal(self, value: Any) -> Any:
        """The one form equal leaves share (for hashing list items)."""
        if self.blank(value):
            return None
        if isinstance(value, str):
            if self.replace:
                value = _replaced(self.replace, value)
            if self.timestamps:
                instant = instant_of(value)
                if instant is not None:
                    return ("t", _truncate(instant, self.timestamp_step))
            if self.numeric_strings:
                number = _number(value)
                if number is not None:
                    return number
        elif self.timestamps and isinstance(value, int | float) and not isinstance(value, bool):
            instant = instant_of(value)
            if instant is not None:
                return ("t", _truncate(instant, self.timestamp_step))
        return value

    def same(self, a: Any, b: Any) -> bool:
        """Two leaves are equal under these rules."""
        if self.blank(a) and self.blank(b):
            return True
        if self.replace and isinstance(a, str) and isinstance(b, str):
            a, b = _replaced(self.replace, a), _replaced(self.replace, b)
            if a == b:
                return True
        if self.timestamps:
            ta, tb = instant_of(a), instant_of(b)
            if ta is not None and tb is not None:
                ta = _truncate(ta, self.timestamp_step)
                tb = _truncate(tb, self.timestamp_step)
                return abs(ta - tb) <= self.timestamp_tolerance + 1e-9
        if self.numeric_strings:
            a = _number(a) if isinstance(a, str) else a
            b = _number(b) if isinstance(b, str) else b
        if _is_number(a) and _is_number(b):
            if a == b:
                return True
            return bool(self.tolerance or self.relative) and math.isclose(
                a, b, rel_tol=self.relative, abs_tol=self.tolerance
            )
        return type(a) is type(b) and a == b


def _replaced(rules: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _number(text: str) -> float | int | None:
    if not _NUMBER.fullmatch(text):
        return None
    return int(text) if text.lstrip("-").isdigit() else float(text)


_ISO = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def instant_of(value: Any) -> float | None:
    """Seconds since the epoch for an ISO 8601 text or an epoch number (s, ms or µs)."""
    if isinstance(value, str):
        if not _ISO.match(value):
            return None
        text = value.replace("Z", "+00:00").replace("z", "+00:00")
        # fromisoformat wants at most 6 fraction digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=_UTC).timestamp()
        return stamp.timestamp()
    if _is_number(value):
        number = float(value)
        if number > 1e14:
            return number / 1e6
        if number > 1e11:
            return number / 1e3
        return number
    return None


_UTC = datetime.fromisoformat("2000-01-01T00:00:00+00:00").tzinfo


def _truncate(instant: float, step: float) -> float:
    if not step:
        return instant
    # Rounded first so 0.123 s in binary floating point does not truncate to 0.122.
    return math.floor(round(instant / step, 3)) * step


class Rules:
    """One route's compiled ``shadow.compare``: a rule trie per answer status."""

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        replace = tuple((re.compile(r.pattern), r.replace) for r in config.replace)
        base = Values(tolerance=config.tolerance, relative=config.tolerance, replace=replace)
        self.base: Values | None = base if (config.tolerance or replace) else None
        self.order_warns = config.order == "warning"
        self._by_status: dict[int | None, PathTrie[Rule]] = {}
        self._ignore_status = "status" in config.ignore
        ignored = {parse(p).header for p in config.ignore if parse(p).root == "header"}
        for rule in config.rules:
            if rule.ignore and not rule.status:
                ignored |= {parse(p).header for p in rule.path if parse(p).root == "header"}
        self.all_headers_ignored = "*" in ignored
        self.headers = tuple(h for h in config.headers if h not in ignored)
        self.status_rules = any(r.status for r in config.rules)
        self.any = bool(
            config.ignore or config.unordered or config.match_by or config.rules or self.base
        )

    @property
    def ignores_status(self) -> bool:
        return self._ignore_status

    def trie(self, status: int | None) -> PathTrie[Rule]:
        key = status if self.status_rules else None
        trie = self._by_status.get(key)
        if trie is None:
            if len(self._by_status) > 100:
                self._by_status.clear()
            trie = self._by_status[key] = self._build(status)
        return trie

    def _build(self, status: int | None) -> PathTrie[Rule]:
        trie: PathTrie[Rule] = PathTrie()
        config = self.config
        for path in config.ignore:
            parsed = parse(path)
            if parsed.root == "body":
                trie.add(parsed, Rule(ignore=True, source=path))
        for path in config.unordered:
            parsed = parse(path)
            if parsed.root == "body":
                trie.add(parsed, Rule(unordered=True, source=path))
        for path, key in config.match_by.items():
            trie.add(parse(path), Rule(match_by=key, source=path))
        for rule in config.rules:
            if not rule.applies_to(status):
                continue
            values = Values.of(rule)
            has_values = values != Values()
            for path in rule.path:
                parsed = parse(path)
                if parsed.root != "body":
                    continue
                trie.add(
                    parsed,
                    Rule(
                        rule.ignore,
                        rule.unordered,
                        rule.match_by,
                        values if has_values else None,
                        source=path,
                    ),
                )
        return trie


def effective(values: Values | None, here: list[Rule]) -> Values | None:
    """The value rules in force below a point, given the payloads reached there."""
    for rule in here:
        if rule.values is not None:
            values = rule.values if values is None else values.merged(rule.values)
    return values
