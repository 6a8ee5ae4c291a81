"""Field-by-field comparison: every difference type and every normalisation."""

from __future__ import annotations

import json
from typing import Any

from strangler.config import CompareConfig, ReplaceRule
from strangler.message import HttpRequest, HttpResponse, make_headers
from strangler.shadow.compare import Comparator, adapt
from strangler.shadow.observation import Observation, Side

JSON = {"Content-Type": "application/json"}


def obs(
    side: Side, body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Observation:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Observation(side, side, status, make_headers(headers or JSON), raw, 0.01)


def diffs(a: Any, b: Any, **config: Any) -> list[tuple[str, str]]:
    comparison = Comparator(CompareConfig(**config)).compare(obs("legacy", a), obs("new", b))
    return [(d.path, d.kind) for d in comparison.differences]


def test_equal_bodies_match() -> None:
    comparison = Comparator(CompareConfig()).compare(obs("legacy", {"a": 1}), obs("new", {"a": 1}))
    assert comparison.outcome == "match"
    assert comparison.differences == ()


def test_each_difference_type_is_reported_at_its_path() -> None:
    legacy = {"name": "Ada", "age": 36, "email": "a@x", "tags": ["a", "b"], "ids": [1, 2, 3]}
    new = {"name": "Bob", "age": "36", "tags": ["b", "a"], "ids": [1, 2], "nick": "b"}
    assert sorted(diffs(legacy, new)) == sorted(
        [
            ("body.name", "value"),
            ("body.age", "type"),
            ("body.email", "missing"),
            ("body.nick", "extra"),
            ("body.tags", "order"),
            ("body.ids[2]", "missing"),
        ]
    )


def test_nested_paths_name_array_indexes_and_fields_generalise_them() -> None:
    comparison = Comparator(CompareConfig()).compare(
        obs("legacy", {"items": [{"id": 1, "qty": 2}, {"id": 2, "qty": 3}]}),
        obs("new", {"items": [{"id": 1, "qty": 2}, {"id": 2, "qty": 4}]}),
    )
    (only,) = comparison.differences
    assert only.path == "body.items[1].qty"
    assert only.field == "body.items[*].qty"
    assert (only.legacy, only.new) == (3, 4)


def test_status_and_selected_headers() -> None:
    legacy = obs("legacy", {}, 200, {"Content-Type": "application/json", "X-Version": "1"})
    new = obs("new", {}, 201, {"Content-Type": "application/json", "X-Other": "1"})
    comparator = Comparator(CompareConfig(headers=("content-type", "x-version")))
    comparison = comparator.compare(legacy, new)
    assert [(d.path, d.kind) for d in comparison.differences] == [
        ("status", "value"),
        ("header.x-version", "missing"),
    ]


def test_ignore_paths_with_wildcards_and_headers() -> None:
    legacy = {"updated_at": 1, "items": [{"id": 1, "sku": "a"}], "keep": 1}
    new = {"updated_at": 2, "items": [{"id": 9, "sku": "a"}], "keep": 1}
    assert diffs(legacy, new) == [("body.updated_at", "value"), ("body.items[0].id", "value")]
    assert diffs(legacy, new, ignore=("body.updated_at", "body.items[*].id")) == []
    a = obs("legacy", {}, headers={"Content-Type": "application/json", "Date": "x"})
    b = obs("new", {}, headers={"Content-Type": "application/json", "Date": "y"})
    with_date = CompareConfig(headers=("content-type", "date"))
    assert Comparator(with_date).compare(a, b).outcome == "mismatch"
    ignored = CompareConfig(headers=("content-type", "date"), ignore=("header.date",))
    assert Comparator(ignored).compare(a, b).outcome == "match"


def test_unordered_arrays() -> None:
    legacy = {"items": [{"id": 1}, {"id": 2}]}
    new = {"items": [{"id": 2}, {"id": 1}]}
    assert diffs(legacy, new) == [("body.items", "order")]
    assert diffs(legacy, new, unordered=("body.items",)) == []


def test_numeric_tolerance() -> None:
    assert diffs({"price": 10.0}, {"price": 10.004}) == [("body.price", "value")]
    assert diffs({"price": 10.0}, {"price": 10.004}, tolerance=0.001) == []
    assert diffs({"price": 10.0}, {"price": 10.5}, tolerance=0.001) == [("body.price", "value")]


def test_regex_replacements_for_volatile_values() -> None:
    legacy = {"id": "3f0e1c9a-1111-4b3a-9c2d-000000000001", "at": "2026-01-01T10:00:00Z"}
    new = {"id": "9a8b7c6d-2222-4b3a-9c2d-000000000002", "at": "2026-05-05T11:11:11Z"}
    assert len(diffs(legacy, new)) == 2
    rules = (
        ReplaceRule(pattern=r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        ReplaceRule(pattern=r"\d{4}-\d\d-\d\dT[\d:]+Z", replace="<time>"),
    )
    assert diffs(legacy, new, replace=rules) == []


def test_non_json_bodies_compare_bytes_with_a_content_type_aware_summary() -> None:
    html = {"Content-Type": "text/html"}
    comparison = Comparator(CompareConfig()).compare(
        obs("legacy", b"<p>\n<b>one</b>\n</p>", headers=html),
        obs("new", b"<p>\n<b>two</b>\n</p>", headers=html),
    )
    (only,) = comparison.differences
    assert (only.path, only.kind) == ("body", "value")
    assert "line 2" in only.legacy and "one" in only.legacy and "two" in only.new
    png = {"Content-Type": "image/png"}
    binary = Comparator(CompareConfig()).compare(
        obs("legacy", b"\x89PNG\x00\x01", headers=png), obs("new", b"\x89PNG\x00\x02", headers=png)
    )
    assert "first difference at byte 5" in binary.differences[0].legacy


def test_json_against_non_json_is_a_type_difference() -> None:
    comparison = Comparator(CompareConfig()).compare(
        obs("legacy", {"a": 1}), obs("new", b"<html>oops</html>")
    )
    assert [(d.path, d.kind) for d in comparison.differences] == [("body", "type")]


def test_noise_fields_are_reported_apart_and_do_not_make_a_mismatch() -> None:
    comparison = Comparator(CompareConfig()).compare(
        obs("legacy", {"a": 1, "nonce": "x"}), obs("new", {"a": 1, "nonce": "y"}), {"body.nonce"}
    )
    assert comparison.outcome == "match"
    assert [d.path for d in comparison.noise] == ["body.nonce"]


def test_a_failed_side_is_an_error_never_an_exception() -> None:
    failed = Observation.failure("new", "customers", "timeout", 2.0)
    comparison = Comparator(CompareConfig()).compare(obs("legacy", {"a": 1}), failed)
    assert comparison.outcome == "error"
    assert comparison.error == "timeout"


class RenamingAdapter:
    """The new service says ``fullName``; legacy clients expect ``name``."""

    def request(self, request: HttpRequest) -> HttpRequest:
        return request

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        data = response.json()
        data["name"] = data.pop("fullName")
        return response.with_json(data)


def test_the_response_adapter_is_applied_before_the_diff() -> None:
    legacy, new = obs("legacy", {"name": "Ada"}), obs("new", {"fullName": "Ada"})
    comparator = Comparator(CompareConfig())
    assert comparator.compare(legacy, new).outcome == "mismatch"
    adapted = adapt(RenamingAdapter(), HttpRequest(), new)
    assert comparator.compare(legacy, adapted).outcome == "match"


def test_an_adapter_that_raises_makes_an_error_observation() -> None:
    adapted = adapt(RenamingAdapter(), HttpRequest(), obs("new", {"other": 1}))
    assert adapted.failed and "adapter" in (adapted.exception or "")
