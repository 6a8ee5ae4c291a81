"""Comparison rules at any depth, list alignment and value equivalences."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from strangler.config import CompareConfig, parse_config
from strangler.errors import ConfigError
from strangler.fieldpath import PathError, parse
from strangler.shadow.compare import Comparator, field_of
from strangler.shadow.reach import body_paths, unapplied
from tests.shadow.test_compare import obs


def compare(a: Any, b: Any, status: int = 200, **config: Any) -> list[tuple[str, str]]:
    comparator = Comparator(CompareConfig(**config))
    comparison = comparator.compare(obs("legacy", a, status), obs("new", b, status))
    return [(d.path, d.kind) for d in comparison.differences]


# ------------------------------------------------------------------ paths


@pytest.mark.parametrize(
    ("rule", "legacy", "new"),
    [
        ("body.a.b", {"a": {"b": 1, "c": 1}}, {"a": {"b": 2, "c": 1}}),
        ("body.*.b", {"x": {"b": 1}, "y": {"b": 1}}, {"x": {"b": 2}, "y": {"b": 3}}),
        ("body.items[*].b", {"items": [{"b": 1}, {"b": 2}]}, {"items": [{"b": 5}, {"b": 6}]}),
        ("body.items[1].b", {"items": [{"b": 1}, {"b": 2}]}, {"items": [{"b": 1}, {"b": 6}]}),
        ("body.**.b", {"b": 1, "p": {"q": [{"b": 1}]}}, {"b": 2, "p": {"q": [{"b": 9}]}}),
        ("body.**", {"anything": [1]}, {"anything": [2], "more": 1}),
    ],
)
def test_each_path_form_ignores_what_it_names(rule: str, legacy: Any, new: Any) -> None:
    assert compare(legacy, new) != []
    assert compare(legacy, new, ignore=(rule,)) == []


def test_star_is_one_level_and_double_star_any_depth() -> None:
    legacy, new = {"p": {"q": {"b": 1}}}, {"p": {"q": {"b": 2}}}
    assert compare(legacy, new, ignore=("body.*.b",)) == [("body.p.q.b", "value")]
    assert compare(legacy, new, ignore=("body.**.b",)) == []
    assert compare(legacy, new, ignore=("body.p.**",)) == []


def test_header_names_are_case_insensitive_in_ignore_and_headers() -> None:
    a = obs("legacy", {}, headers={"content-type": "application/json", "X-Trace": "1"})
    b = obs("new", {}, headers={"Content-Type": "application/json; v=2", "x-trace": "2"})
    config = CompareConfig(headers=("Content-Type", "X-TRACE"))
    assert len(Comparator(config).compare(a, b).differences) == 2
    ignoring = CompareConfig(headers=("Content-Type", "X-TRACE"), ignore=("header.Content-Type",))
    assert [d.path for d in Comparator(ignoring).compare(a, b).differences] == ["header.x-trace"]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("createdAt", "must start with body."),
        ("**.createdAt", "must start with body."),
        ("bodyx.id", "must start with body."),
        ("body..id", "empty key"),
        ("body.a*", "mixes *"),
        ("body.items[x]", "not [*] or a list index"),
        ("body.**.**", "** twice"),
        ("header.", "header.<name>"),
    ],
)
def test_bad_paths_are_rejected_with_the_reason(path: str, why: str) -> None:
    with pytest.raises(PathError, match=rf".*{why.replace('*', '.').replace('[', '.')}"):
        parse(path)


def test_strangler_check_names_the_rule_and_what_is_wrong(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        """
legacy: m
upstreams: {m: {url: "http://127.0.0.1:1"}, n: {url: "http://127.0.0.1:2"}}
routes:
  - name: api
    match: {path: /api/**}
    to: n
    shadow:
      compare:
        ignore: [body.ok, createdAt]
        rules:
          - {path: body.**.createdAt}
          - {path: bodyx.id, ignore: true}
          - {path: body.a, equal: [null, 0]}
          - {path: body, status: [4x4], ignore: true}
        match_by: {header.x: id}
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(routes)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    out = result.stdout + result.stderr
    assert "routes[0].shadow.compare.ignore: 'createdAt' must start with body." in out
    assert "routes[0].shadow.compare.rules[0]: does nothing" in out
    assert "routes[0].shadow.compare.rules[1].path: 'bodyx.id' must start with body." in out
    assert "routes[0].shadow.compare.rules[2].equal: 0 cannot be equated" in out
    assert "routes[0].shadow.compare.rules[3].status: '4x4' is not a status" in out
    assert "match_by names a list in the body" in out


def test_fields_are_templates_so_ids_never_become_fields() -> None:
    assert field_of("body.users.8812.name") == "body.users.<key>.name"
    assert field_of("body.users.3f2a9c1e-0b7d-4c8e-9a51-0d2f6a1b7c3e.name") == (
        "body.users.<key>.name"
    )
    assert field_of("body.items[slug=how-to-3].title") == "body.items[*].title"
    assert field_of("body.items[12].title") == "body.items[*].title"
    assert field_of("body.user.name") == "body.user.name"


# ------------------------------------------------------------------ lists


ARTICLES = [{"slug": s, "title": s.upper()} for s in "abcde"]


def test_match_by_one_missing_item_is_one_difference() -> None:
    new = [a for a in ARTICLES if a["slug"] != "c"]
    positional = compare({"articles": ARTICLES}, {"articles": new})
    assert len(positional) == 1  # aligned by content even without match_by
    keyed = compare({"articles": ARTICLES}, {"articles": new}, match_by={"body.articles": "slug"})
    assert keyed == [("body.articles[slug=c]", "missing")]


def test_match_by_reports_a_changed_item_under_its_key_and_order_once() -> None:
    new = [dict(a) for a in reversed(ARTICLES)]
    new[0]["title"] = "changed"  # slug e
    diffs = compare({"articles": ARTICLES}, {"articles": new}, match_by={"body.articles": "slug"})
    assert diffs == [("body.articles[slug=e].title", "value"), ("body.articles", "order")]


def test_order_can_be_a_warning_that_still_matches() -> None:
    comparator = Comparator(CompareConfig(match_by={"body.items": "id"}, order="warning"))
    a = {"items": [{"id": 1}, {"id": 2}]}
    b = {"items": [{"id": 2}, {"id": 1}]}
    comparison = comparator.compare(obs("legacy", a), obs("new", b))
    assert comparison.outcome == "match"
    assert [(w.path, w.kind) for w in comparison.warnings] == [("body.items", "order")]


def test_unordered_is_a_multiset_when_lengths_differ() -> None:
    legacy = {"tags": ["a", "b", "c", "d", "e"]}
    new = {"tags": ["e", "d", "b", "a"]}
    assert compare(legacy, new, unordered=("body.tags",)) == [("body.tags[2]", "missing")]
    dupes = compare({"t": [1, 1, 2]}, {"t": [1, 2, 2]}, unordered=("body.t",))
    assert dupes == [("body.t[1]", "value")]


def test_one_insertion_does_not_cascade_without_rules() -> None:
    legacy = {"items": [{"id": i, "name": f"n{i}"} for i in range(10)]}
    new = {"items": [*legacy["items"][:3], {"id": 99, "name": "x"}, *legacy["items"][3:]]}
    assert compare(legacy, new) == [("body.items[3]", "extra")]


def test_a_shift_at_the_same_length_is_two_differences() -> None:
    legacy = {"items": ["a", "b", "c", "d", "e"]}
    new = {"items": ["a", "c", "d", "e", "f"]}
    assert compare(legacy, new) == [("body.items[1]", "missing"), ("body.items[4]", "extra")]


def test_rules_reach_inside_keyed_items() -> None:
    legacy = {"items": [{"id": 1, "at": "2026-01-01T00:00:00.123456Z", "bio": None}]}
    new = {"items": [{"id": "1", "at": "2026-01-01T00:00:00.123Z", "bio": ""}]}
    rules = (
        {"path": "body.**", "equal": [None, ""]},
        {"path": "body.**.id", "numeric_strings": True},
        {"path": "body.**.at", "timestamp": {"precision": "ms"}},
    )
    assert len(compare(legacy, new, match_by={"body.items": "id"})) == 3
    assert compare(legacy, new, match_by={"body.items": "id"}, rules=rules) == []


# ------------------------------------------------------------------ values


def test_null_empty_and_absent_are_each_opt_in() -> None:
    legacy, new = {"a": None, "b": "", "c": None}, {"a": "", "b": None}
    assert len(compare(legacy, new)) == 3
    only_values = compare(legacy, new, rules=({"path": "body", "equal": [None, ""]},))
    assert only_values == [("body.c", "missing")]
    assert compare(legacy, new, rules=({"path": "body", "equal": [None, "", "absent"]},)) == []


def test_numbers_equal_numeric_strings_only_where_asked() -> None:
    rule = {"path": "body.id", "numeric_strings": True}
    assert compare({"id": 7, "n": 7}, {"id": "7", "n": "7"}, rules=(rule,)) == [("body.n", "type")]
    assert compare({"id": 7}, {"id": "8"}, rules=(rule,)) == [("body.id", "type")]


def test_timestamps_as_instants_with_precision_and_tolerance() -> None:
    micro, milli = "2026-12-06T10:00:00.123456Z", "2026-12-06T10:00:00.123+00:00"
    rule = {"path": "body.at", "timestamp": {"precision": "ms"}}
    assert compare({"at": micro}, {"at": milli}) == [("body.at", "value")]
    assert compare({"at": micro}, {"at": milli}, rules=(rule,)) == []
    later = "2026-12-06T10:00:01.900Z"
    assert compare({"at": micro}, {"at": later}, rules=(rule,)) == [("body.at", "value")]
    loose = {"path": "body.at", "timestamp": {"precision": "s", "tolerance": "2s"}}
    assert compare({"at": micro}, {"at": later}, rules=(loose,)) == []
    epoch = {"path": "body.at", "timestamp": {"precision": "ms"}}
    assert compare({"at": 1796551200123}, {"at": "2026-12-06T10:00:00.123Z"}, rules=(epoch,)) == []


def test_numeric_tolerance_absolute_and_relative() -> None:
    absolute = {"path": "body.price", "tolerance": 0.01}
    relative = {"path": "body.price", "relative_tolerance": 0.001}
    assert compare({"price": 10.0}, {"price": 10.005}, rules=(absolute,)) == []
    assert compare({"price": 10.0}, {"price": 10.02}, rules=(absolute,)) != []
    assert compare({"price": 1000.0}, {"price": 1000.9}, rules=(relative,)) == []
    assert compare({"price": 1000.0}, {"price": 1002.0}, rules=(relative,)) != []


def test_rules_for_some_statuses_only() -> None:
    rule = {"path": "body", "status": ["4xx"], "ignore": True}
    error_a, error_b = {"errors": {"body": ["nope"]}}, {"message": "not found"}
    assert compare(error_a, error_b, status=404, rules=(rule,)) == []
    assert compare(error_a, error_b, status=200, rules=(rule,)) != []
    ranged = {"path": "body.detail", "status": ["500-599"], "ignore": True}
    assert compare({"detail": 1}, {"detail": 2}, status=503, rules=(ranged,)) == []


def test_replace_keeps_working() -> None:
    replace = ({"pattern": r"req-\w+", "replace": "req"},)
    assert compare({"id": "req-abc"}, {"id": "req-xyz"}, replace=replace) == []


def test_config_errors_from_python_too() -> None:
    with pytest.raises(ConfigError, match="relative_tolerance"):
        parse_config(
            {
                "legacy": "m",
                "upstreams": {"m": {"url": "http://a"}},
                "routes": [
                    {
                        "name": "r",
                        "match": {"path": "/r"},
                        "to": "m",
                        "shadow": {"compare": {"rules": [{"path": "body.x"}]}},
                    }
                ],
            }
        )


def test_rules_that_never_applied_are_listed_with_the_spelling_that_would_reach() -> None:
    config = CompareConfig(
        ignore=("body.articles.createdAt", "body.articles[*].slug", "body.**.nope"),
        rules=({"path": "body.*.count", "numeric_strings": True},),
    )
    legacy = {"articles": [{"slug": "a", "createdAt": "x"}], "meta": {"count": 1}}
    new = {"articles": [{"slug": "b", "createdAt": "y"}], "meta": {"count": "1"}}
    comparison = Comparator(config).compare(obs("legacy", legacy), obs("new", new))
    assert comparison.reached == {"body.articles[*].slug", "body.*.count"}
    found = unapplied(body_paths(config), comparison.reached, [json.dumps(legacy)])
    assert found == [
        {"path": "body.articles.createdAt", "suggest": "body.articles[*].createdAt"},
        {"path": "body.**.nope", "suggest": None},
    ]
