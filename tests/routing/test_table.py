"""Matching: each kind, precedence, ambiguity, overrides, and a 10,000-route table."""

from __future__ import annotations

import pytest

from strangler.errors import ConfigError
from strangler.message import HttpRequest
from strangler.override import Override
from strangler.routing.table import RouteTable

from .helpers import config, route

NO_HEADERS: dict[str, str] = {}


def matched(
    table: RouteTable, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> str | None:
    found = table.match(method, path, headers or NO_HEADERS)
    return found.route.name if found else None


def test_exact_param_and_subtree_each_match() -> None:
    table = RouteTable.build(
        config(
            route("health", "/health"),
            route("customer", "/api/customers/{id}"),
            route("orders", "/api/orders/**", to="orders"),
        )
    )
    assert matched(table, "/health") == "health"
    assert matched(table, "/health/") == "health"
    assert matched(table, "/healthz") is None
    found = table.match("GET", "/api/customers/42", NO_HEADERS)
    assert found is not None and found.route.name == "customer" and found.params == {"id": "42"}
    assert matched(table, "/api/customers/42/notes") is None
    assert matched(table, "/api/customers") is None
    # a subtree covers its own root and everything below it
    assert matched(table, "/api/orders") == "orders"
    assert matched(table, "/api/orders/1/lines/2") == "orders"
    assert matched(table, "/api/ordersx") is None


def test_exact_beats_param_beats_subtree() -> None:
    table = RouteTable.build(
        config(
            route("all", "/api/customers/**"),
            route("one", "/api/customers/{id}"),
            route("me", "/api/customers/me"),
        )
    )
    assert matched(table, "/api/customers/me") == "me"
    assert matched(table, "/api/customers/7") == "one"
    assert matched(table, "/api/customers/7/orders") == "all"
    assert matched(table, "/api/customers") == "all"


def test_longer_subtree_before_shorter() -> None:
    table = RouteTable.build(
        config(route("api", "/api/**"), route("v2", "/api/v2/**"), route("root", "/**"))
    )
    assert matched(table, "/api/v2/x") == "v2"
    assert matched(table, "/api/v1/x") == "api"
    assert matched(table, "/other") == "root"
    assert matched(table, "/") == "root"


def test_param_route_beats_subtree_even_when_subtree_prefix_is_literal() -> None:
    table = RouteTable.build(config(route("sub", "/a/b/**"), route("param", "/a/{x}/c")))
    assert matched(table, "/a/b/c") == "param"
    assert matched(table, "/a/b/d") == "sub"


def test_leftmost_literal_wins_between_param_patterns() -> None:
    table = RouteTable.build(config(route("left", "/a/b/{y}"), route("right", "/a/{x}/c")))
    assert matched(table, "/a/b/c") == "left"
    found = table.match("GET", "/a/z/c", NO_HEADERS)
    assert found is not None and found.route.name == "right" and found.params == {"x": "z"}


def test_methods_and_headers_constrain_and_rank() -> None:
    table = RouteTable.build(
        config(
            route("reads", "/api/customers/**", methods=["GET", "HEAD"]),
            route("writes", "/api/customers/**", methods=["POST", "PUT"], to="orders"),
            route("acme", "/api/customers/**", headers={"X-Tenant": "acme"}),
        )
    )
    assert matched(table, "/api/customers/1") == "reads"
    assert matched(table, "/api/customers/1", "POST") == "writes"
    assert matched(table, "/api/customers/1", "DELETE") is None
    # a header constraint is more specific than a methods list
    assert matched(table, "/api/customers/1", "POST", {"x-tenant": "acme"}) == "acme"
    assert matched(table, "/api/customers/1", "POST", {"x-tenant": "other"}) == "writes"


def test_specific_route_falls_through_to_general_when_constraints_fail() -> None:
    table = RouteTable.build(
        config(route("me", "/api/customers/me", methods=["GET"]), route("all", "/api/customers/**"))
    )
    assert matched(table, "/api/customers/me") == "me"
    assert matched(table, "/api/customers/me", "DELETE") == "all"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (route("a", "/api/x"), route("b", "/api/x/")),
        (route("a", "/api/{id}"), route("b", "/api/{key}")),
        (route("a", "/api/**", methods=["GET"]), route("b", "/api/**", methods=["HEAD", "GET"])),
        (route("a", "/api/**", methods=["GET", "POST"]), route("b", "/api/**", methods=["POST"])),
        (route("a", "/api/**", headers={"X-A": "1"}), route("b", "/api/**", headers={"X-B": "2"})),
    ],
)
def test_true_ties_are_config_errors_naming_both_routes(
    a: dict[str, object], b: dict[str, object]
) -> None:
    with pytest.raises(ConfigError) as info:
        RouteTable.build(config(a, b))
    text = str(info.value)
    assert "'a'" in text and "routes[1].match" in text and "ties" in text


def test_disjoint_constraints_on_one_path_are_not_ties() -> None:
    RouteTable.build(
        config(
            route("get", "/api/**", methods=["GET"]),
            route("post", "/api/**", methods=["POST"]),
            route("acme", "/api/{x}", headers={"X-Tenant": "acme"}),
            route("globex", "/api/{x}", headers={"X-Tenant": "globex"}),
            # more constraints outrank fewer, so these are ordered, not tied
            route("plain", "/api/{x}"),
        )
    )


@pytest.mark.parametrize(
    "path", ["/api/{id", "/api/x*", "/api/**/more", "/api/{id}/{id}", "/api/{9x}", "/../x"]
)
def test_bad_patterns_are_config_errors(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        RouteTable.build(config(route("bad", path)))
    assert "routes[0].match.path" in str(info.value) and path in str(info.value)


def test_effective_mode_percent_and_source() -> None:
    cfg = config(
        route("c", "/c/**", mode="canary", percent=25),
        route("n", "/n/**", mode="new"),
        route("l", "/l/**"),
    )
    table = RouteTable.build(cfg)
    c, n, leg = (table.by_name[x] for x in "cnl")
    assert (c.mode, c.percent, c.source, c.override) == ("canary", 25.0, "config", None)
    assert (n.mode, n.percent) == ("new", 100.0)
    assert (leg.mode, leg.percent) == ("legacy", 0.0)

    flip = Override(mode="canary", percent=60)
    back = Override(mode="legacy", source="auto-rollback", reason="error_rate 0.2 > 0.05")
    table = RouteTable.build(cfg, {"l": flip, "c": back, "unknown": flip})
    assert (table.by_name["l"].mode, table.by_name["l"].percent) == ("canary", 60.0)
    assert (table.by_name["l"].source, table.by_name["l"].override) == ("override", flip)
    assert (table.by_name["c"].mode, table.by_name["c"].percent) == ("legacy", 0.0)
    assert table.by_name["c"].source == "auto-rollback"
    # canary override without a percent keeps the configured one
    table = RouteTable.build(cfg, {"c": Override(mode="canary")})
    assert table.by_name["c"].percent == 25.0


def test_ten_thousand_routes_build_and_match() -> None:
    routes = []
    for i in range(2500):
        routes.append(route(f"exact{i}", f"/svc{i}/status"))
        routes.append(route(f"param{i}", f"/svc{i}/items/{{id}}"))
        routes.append(route(f"sub{i}", f"/svc{i}/files/**"))
        routes.append(route(f"deep{i}", f"/t/{i}/{{a}}/x/{{b}}"))
    table = RouteTable.build(config(*routes))
    assert len(table.routes) == 10_000
    for i in (0, 1, 777, 2499):
        assert matched(table, f"/svc{i}/status") == f"exact{i}"
        found = table.match("GET", f"/svc{i}/items/abc", NO_HEADERS)
        assert (
            found is not None and found.route.name == f"param{i}" and found.params == {"id": "abc"}
        )
        assert matched(table, f"/svc{i}/files/a/b/c") == f"sub{i}"
        found = table.match("GET", f"/t/{i}/1/x/2", NO_HEADERS)
        assert found is not None and found.params == {"a": "1", "b": "2"}
    assert matched(table, "/svc2500/status") is None
    assert matched(table, "/svc1/other") is None


def test_adapters_are_loaded_from_import_paths_and_reused_across_rebuilds() -> None:
    cfg = config(route("c", "/c/**", adapter="tests.routing.sample_adapter:Rename"))
    table = RouteTable.build(cfg)
    adapter = table.by_name["c"].adapter
    assert adapter is not None and type(adapter).__name__ == "Rename"
    again = RouteTable.build(cfg, {"c": Override(mode="new")}, previous=table)
    assert again.by_name["c"].adapter is adapter


def test_an_adapter_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        RouteTable.build(
            config(route("c", "/c/**", adapter="tests.routing.sample_adapter:NotAnAdapter"))
        )
    assert "routes[0].adapter" in str(info.value) and "NotAnAdapter" in str(info.value)


def test_declarative_adapters_are_built_when_the_table_is() -> None:
    cfg = config(
        route(
            "c",
            "/api/customers/{id}",
            adapter={"path": "/v2/customers/{id}", "response": {"rename": {"full_name": "name"}}},
        )
    )
    adapter = RouteTable.build(cfg).by_name["c"].adapter
    assert adapter is not None
    request = adapter.request(HttpRequest(path="/api/customers/7", params={"id": "7"}))
    assert request.path == "/v2/customers/7"


def test_patterns_are_normalised_like_request_paths() -> None:
    table = RouteTable.build(config(route("tilde", "/users/%7Eadmin//x/./y")))
    assert matched(table, "/users/~admin/x/y") == "tilde"
