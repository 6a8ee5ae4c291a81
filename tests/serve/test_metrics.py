"""Metric values after known traffic, and counts adding up across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from strangler.metrics import Metrics, RouteCounts
from strangler.override import Override
from strangler.proxy.outcome import Failure
from strangler.routing.router import Router
from strangler.runtime import RequestRecord
from tests.routing.helpers import config, route


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_counts_durations_and_fallbacks_after_known_traffic() -> None:
    m = Metrics()
    for _ in range(3):
        m.listener(RequestRecord("customers", "customers", 200, 0.004, True))
    m.listener(RequestRecord("customers", "customers", 503, 0.02, True, error=Failure.STATUS))
    m.listener(
        RequestRecord("customers", "monolith", 200, 0.3, True, error=Failure.TIMEOUT, fallback=True)
    )
    m.listener(RequestRecord(None, "monolith", 404, 0.001, False))
    assert (
        value(m, "strangler_requests_total", route="customers", upstream="customers", code="200")
        == 3
    )
    assert (
        value(m, "strangler_requests_total", route="customers", upstream="customers", code="503")
        == 1
    )
    assert value(m, "strangler_requests_total", route="-", upstream="monolith", code="404") == 1
    assert value(m, "strangler_fallbacks_total", route="customers") == 1
    assert (
        value(
            m, "strangler_request_duration_seconds_count", route="customers", upstream="customers"
        )
        == 4
    )
    assert (
        value(
            m,
            "strangler_request_duration_seconds_bucket",
            route="customers",
            upstream="customers",
            le="0.005",
        )
        == 3
    )
    assert (
        abs(
            value(
                m, "strangler_request_duration_seconds_sum", route="customers", upstream="customers"
            )
            - 0.032
        )
        < 1e-9
    )
    snap = m.snapshot()
    assert (snap["customers"].requests, snap["customers"].errors, snap["customers"].fallbacks) == (
        5,
        1,
        1,
    )
    assert snap["-"].requests == 1


def test_route_gauges_follow_the_router() -> None:
    m = Metrics()
    router = Router(
        config(route("customers", "/c/**", mode="canary", percent=25), route("orders", "/o/**"))
    )
    router.on_swap.append(m.observe_table)
    m.observe_table(router.table)
    assert value(m, "strangler_route_percent", route="customers") == 25
    assert value(m, "strangler_route_mode", route="customers", mode="canary") == 1
    assert value(m, "strangler_route_mode", route="customers", mode="legacy") == 0
    router.set_overrides({"customers": Override(mode="new")})
    assert value(m, "strangler_route_percent", route="customers") == 100
    assert value(m, "strangler_route_mode", route="customers", mode="new") == 1
    assert value(m, "strangler_route_mode", route="customers", mode="canary") == 0
    assert value(m, "strangler_route_mode", route="orders", mode="legacy") == 1


def test_other_counters_are_exposed_under_their_design_names() -> None:
    m = Metrics()
    assert value(m, "strangler_config_reloads_total", result="rejected") == 0
    m.reload("accepted")
    m.reload("rejected")
    m.reload("rejected")
    m.shadow("customers", "mismatch")
    m.shadow("customers", "match", 40)  # the mirror's per-turn tally of identical answers
    m.rollback("customers", "error_rate")
    m.sync_event("customers", "c", "applied")
    m.sync_event("customers", "c", "applied", 1999)  # a batch's tally in one call
    m.sync_lag("pg", 1.5)
    assert value(m, "strangler_config_reloads_total", result="accepted") == 1
    assert value(m, "strangler_config_reloads_total", result="rejected") == 2
    assert value(m, "strangler_shadow_total", route="customers", outcome="mismatch") == 1
    assert value(m, "strangler_shadow_total", route="customers", outcome="match") == 40
    assert value(m, "strangler_rollbacks_total", route="customers", reason="error_rate") == 1
    assert (
        value(m, "strangler_sync_events_total", table="customers", op="c", outcome="applied")
        == 2000
    )
    assert value(m, "strangler_sync_lag_seconds", source="pg") == 1.5


def test_counts_add_up_across_processes(tmp_path: Path) -> None:
    worker = textwrap.dedent(
        f"""
        from pathlib import Path
        from strangler.metrics import Metrics
        from strangler.runtime import RequestRecord
        m = Metrics(Path({str(tmp_path)!r}))
        for _ in range(7):
            m.listener(RequestRecord("customers", "customers", 200, 0.01, True))
        m.fallback("customers")
        m.flush()
        """
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], check=True, timeout=60)
    here = Metrics(tmp_path)
    here.listener(RequestRecord("customers", "customers", 200, 0.01, True))
    assert (
        value(here, "strangler_requests_total", route="customers", upstream="customers", code="200")
        == 15
    )
    assert (
        value(
            here,
            "strangler_request_duration_seconds_count",
            route="customers",
            upstream="customers",
        )
        == 15
    )
    assert here.snapshot()["customers"] == RouteCounts(requests=15, errors=0, fallbacks=2)
