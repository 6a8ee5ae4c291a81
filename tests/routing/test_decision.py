"""Who answers: modes, sticky canary buckets, cohorts, pins, shadow and fallback."""

from __future__ import annotations

from typing import Any

from strangler.routing.decision import decide
from strangler.routing.table import RouteTable

from .helpers import config, route


def canary(percent: float, **extra: Any) -> RouteTable:
    extra.setdefault("sticky", ["header:X-User-Id"])
    return RouteTable.build(
        config(route("customers", "/api/customers/**", mode="canary", percent=percent, **extra))
    )


def users_on_new(table: RouteTable, users: range) -> set[int]:
    return {
        u
        for u in users
        if decide(table, "GET", "/api/customers/1", {"x-user-id": f"user-{u}"}, "10.0.0.1").to_new
    }


def test_modes_pick_the_upstream() -> None:
    table = RouteTable.build(
        config(
            route("l", "/l"),
            route("s", "/s", mode="shadow"),
            route("n", "/n", mode="new"),
        )
    )
    for path, upstream, to_new, shadow_to in [
        ("/l", "monolith", False, None),
        ("/s", "monolith", False, "customers"),
        ("/n", "customers", True, None),
        ("/unmatched", "monolith", False, None),
    ]:
        d = decide(table, "GET", path, {}, "10.0.0.1")
        assert (d.upstream, d.to_new, d.shadow_to, d.legacy) == (
            upstream,
            to_new,
            shadow_to,
            "monolith",
        )
    unmatched = decide(table, "GET", "/x", {}, None)
    assert unmatched.route is None and unmatched.route_name == "-"


def test_decision_carries_normalised_path_and_params() -> None:
    table = RouteTable.build(config(route("c", "/api/customers/{id}", mode="new")))
    d = decide(table, "GET", "/api//orders/../customers/%34%32", {}, None)
    assert d.path == "/api/customers/42" and d.params == {"id": "42"} and d.upstream == "customers"


def test_canary_share_is_within_three_points_at_25_percent() -> None:
    on_new = users_on_new(canary(25), range(5000))
    assert abs(len(on_new) / 5000 - 0.25) <= 0.03


def test_same_key_always_lands_on_the_same_side() -> None:
    table = canary(50)
    for u in range(200):
        sides = {
            decide(table, "GET", f"/api/customers/{n}", {"x-user-id": f"user-{u}"}, None).upstream
            for n in range(5)
        }
        assert len(sides) == 1


def test_raising_the_percent_never_moves_a_user_back() -> None:
    at_20 = users_on_new(canary(20), range(5000))
    at_50 = users_on_new(canary(50), range(5000))
    assert at_20 <= at_50 and len(at_50) > len(at_20)
    assert users_on_new(canary(0), range(2000)) == set()
    assert users_on_new(canary(100), range(2000)) == set(range(2000))


def test_routes_in_one_cohort_move_a_user_together() -> None:
    def table(cohort: str | None) -> RouteTable:
        extra = {"cohort": cohort} if cohort else {}
        return RouteTable.build(
            config(
                route(
                    "customers",
                    "/api/customers/**",
                    mode="canary",
                    percent=30,
                    sticky=["header:X-User-Id"],
                    **extra,
                ),
                route(
                    "orders",
                    "/api/orders/**",
                    to="orders",
                    mode="canary",
                    percent=30,
                    sticky=["header:X-User-Id"],
                    **extra,
                ),
            )
        )

    def sides(t: RouteTable, u: int) -> tuple[bool, bool]:
        h = {"x-user-id": f"user-{u}"}
        return (
            decide(t, "GET", "/api/customers/1", h, None).to_new,
            decide(t, "GET", "/api/orders/1", h, None).to_new,
        )

    together = table("accounts")
    assert all(a == b for a, b in (sides(together, u) for u in range(2000)))
    apart = table(None)
    assert any(a != b for a, b in (sides(apart, u) for u in range(2000)))


def test_sticky_key_precedence_header_then_cookie_then_ip() -> None:
    table = canary(50, sticky=["header:X-User-Id", "cookie:sid", "ip"])

    def bucket(headers: dict[str, str], ip: str | None) -> int:
        return decide(table, "GET", "/api/customers/1", headers, ip).bucket

    by_header = bucket({"x-user-id": "alice"}, "10.0.0.1")
    assert bucket({"x-user-id": "alice", "cookie": "sid=s1"}, "10.0.0.9") == by_header
    by_cookie = bucket({"cookie": "theme=dark; sid=s1"}, "10.0.0.1")
    assert bucket({"cookie": "sid=s1"}, "10.0.0.2") == by_cookie
    by_ip = bucket({}, "10.0.0.1")
    assert bucket({"cookie": "other=1"}, "10.0.0.1") == by_ip
    assert len({by_header, by_cookie, by_ip}) == 3


def test_no_sticky_key_gives_a_random_bucket_per_request() -> None:
    table = canary(50, sticky=["header:X-User-Id"])
    buckets = [decide(table, "GET", "/api/customers/1", {}, "10.0.0.1").bucket for _ in range(200)]
    assert len(set(buckets)) > 100
    sides = {decide(table, "GET", "/api/customers/1", {}, None).to_new for _ in range(200)}
    assert sides == {True, False}


def test_pin_header_is_honoured_only_when_configured() -> None:
    r = route("customers", "/api/customers/**", mode="canary", percent=0, sticky=["ip"])
    unpinned = RouteTable.build(config(r))
    pinned = RouteTable.build(config(r, pin_header="X-Strangler-Pin"))
    assert (
        decide(pinned, "GET", "/api/customers/1", {"x-strangler-pin": "new"}, "1.1.1.1").upstream
        == "customers"
    )
    assert decide(pinned, "GET", "/api/customers/1", {}, "1.1.1.1").upstream == "monolith"
    assert (
        decide(unpinned, "GET", "/api/customers/1", {"x-strangler-pin": "new"}, "1.1.1.1").upstream
        == "monolith"
    )
    everyone = RouteTable.build(config({**r, "percent": 100}, pin_header="X-Strangler-Pin"))
    assert (
        decide(
            everyone, "GET", "/api/customers/1", {"x-strangler-pin": "legacy"}, "1.1.1.1"
        ).upstream
        == "monolith"
    )


def test_fallback_only_for_safe_methods_on_the_new_side() -> None:
    table = RouteTable.build(
        config(route("c", "/c/**", mode="new", fallback=True), route("l", "/l/**", fallback=True))
    )
    assert decide(table, "GET", "/c/1", {}, None).fallback
    assert decide(table, "HEAD", "/c/1", {}, None).fallback
    assert not decide(table, "POST", "/c/1", {}, None).fallback
    assert not decide(table, "GET", "/l/1", {}, None).fallback
    no_flag = RouteTable.build(config(route("c", "/c/**", mode="new")))
    assert not decide(no_flag, "GET", "/c/1", {}, None).fallback


def test_canary_with_a_shadow_block_mirrors_to_the_side_that_did_not_answer() -> None:
    table = canary(50, sticky=["header:X-User-Id"], shadow={"percent": 100})
    seen = set()
    for u in range(100):
        d = decide(table, "GET", "/api/customers/1", {"x-user-id": str(u)}, None)
        seen.add((d.upstream, d.shadow_to))
    assert seen == {("customers", "monolith"), ("monolith", "customers")}
    assert decide(canary(50), "GET", "/api/customers/1", {"x-user-id": "1"}, None).shadow_to is None
