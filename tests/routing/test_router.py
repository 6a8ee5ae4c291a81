"""The router swaps whole tables: configs, overrides, failed builds, callbacks."""

from __future__ import annotations

import pytest

from strangler.errors import ConfigError
from strangler.override import Override
from strangler.routing.router import Router
from strangler.routing.table import RouteTable

from .helpers import config, route


def test_apply_config_swaps_and_bumps_version() -> None:
    router = Router(config(route("c", "/c/**")))
    seen: list[RouteTable] = []
    router.on_swap.append(seen.append)
    old = router.table
    router.apply_config(config(route("c", "/c/**", mode="new")))
    assert router.config_version == 2
    assert router.table is not old and seen == [router.table]
    assert router.table.by_name["c"].mode == "new"
    # the table a request already holds is untouched
    assert old.by_name["c"].mode == "legacy"


def test_a_config_that_does_not_build_changes_nothing() -> None:
    router = Router(config(route("c", "/c/**")))
    good = router.table
    with pytest.raises(ConfigError):
        router.apply_config(config(route("a", "/x/{id}"), route("b", "/x/{key}")))
    router.reject("routes[1].match: ties")
    assert router.table is good and router.config_version == 1
    assert router.last_reload_error == "routes[1].match: ties"
    router.apply_config(config(route("c", "/c/**", mode="new")))
    assert router.last_reload_error is None


def test_overrides_survive_a_config_reload() -> None:
    router = Router(config(route("c", "/c/**", mode="canary", percent=10)))
    router.set_overrides({"c": Override(mode="legacy", source="auto-rollback")})
    assert (router.table.by_name["c"].mode, router.table.by_name["c"].source) == (
        "legacy",
        "auto-rollback",
    )
    router.apply_config(config(route("c", "/c/**", mode="canary", percent=40)))
    assert router.table.by_name["c"].mode == "legacy"
    router.set_overrides({})
    assert (router.table.by_name["c"].mode, router.table.by_name["c"].percent) == ("canary", 40.0)
    assert router.config_version == 2


def test_a_failing_swap_callback_does_not_block_the_swap() -> None:
    router = Router(config(route("c", "/c/**")))

    def broken(table: RouteTable) -> None:
        raise RuntimeError("observer bug")

    router.on_swap.append(broken)
    router.set_overrides({"c": Override(mode="new")})
    assert router.table.by_name["c"].mode == "new"


def test_a_table_built_ahead_is_used_only_if_overrides_did_not_change_meanwhile() -> None:
    router = Router(config(route("c", "/c/**")))
    new_config = config(route("c", "/c/**", mode="canary", percent=10))
    prebuilt = router.build(new_config)
    assert router.table.by_name["c"].mode == "legacy"  # building swaps nothing
    router.apply_config(new_config, prebuilt)
    assert router.table is prebuilt[0]

    stale = router.build(config(route("c", "/c/**", mode="canary", percent=20)))
    router.set_overrides({"c": Override(mode="new")})
    router.apply_config(config(route("c", "/c/**", mode="canary", percent=20)), stale)
    assert router.table is not stale[0]
    assert router.table.by_name["c"].mode == "new"  # the override that arrived meanwhile
