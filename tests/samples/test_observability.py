"""What operators import: the Prometheus alert rules and the Grafana dashboard in deploy/.

Checked with Prometheus's own ``promtool`` (Debian package ``prometheus``): the rules
load, fire on the series that should page and stay quiet on healthy ones; every
dashboard query is valid PromQL; and every metric either file names is one that
strangler's ``/metrics`` really exposes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from strangler.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: scripts/setup installs it"
)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _exposed_names() -> set[str]:
    text = Metrics().render()[0].decode()
    return set(re.findall(r"^# TYPE (\S+)", text, re.M))


def _used_names(text: str) -> set[str]:
    return set(re.findall(r"\bstrangler_[a-z_]+", text))


def _dashboard_queries() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


@needs_promtool
def test_alert_rules_load() -> None:
    done = _promtool("check", "rules", str(RULES), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_alerts_fire_on_trouble_and_stay_quiet_when_healthy(tmp_path: Path) -> None:
    # Route "bad" mismatches 10% and falls back 5%; route "good" is clean. One rollback and
    # one rejected reload happen; sync source "shop" falls 60 s behind, "catalog" keeps up.
    series = [
        ('strangler_shadow_total{route="bad",outcome="match"}', "0+90x30"),
        ('strangler_shadow_total{route="bad",outcome="mismatch"}', "0+10x30"),
        ('strangler_shadow_total{route="good",outcome="match"}', "0+100x30"),
        ('strangler_shadow_total{route="good",outcome="mismatch"}', "0+0x30"),
        ('strangler_requests_total{route="bad",upstream="customers",code="200"}', "0+100x30"),
        ('strangler_requests_total{route="good",upstream="customers",code="200"}', "0+100x30"),
        ('strangler_fallbacks_total{route="bad"}', "0+5x30"),
        ('strangler_fallbacks_total{route="good"}', "0+0x30"),
        ('strangler_rollbacks_total{route="bad",reason="error_rate"}', "0x10 1x20"),
        ('strangler_config_reloads_total{result="rejected"}', "0x10 1x20"),
        ('strangler_config_reloads_total{result="accepted"}', "0x10 5x20"),
        ('strangler_sync_lag_seconds{source="shop"}', "60x30"),
        ('strangler_sync_lag_seconds{source="catalog"}', "0.2x30"),
        ('strangler_cutovers_total{context="customers",to="service",result="aborted"}', "0x5 1x25"),
        ('strangler_cutovers_total{context="customers",to="service",result="refused"}', "0x5 3x25"),
        ('strangler_cutovers_total{context="customers",to="legacy",result="done"}', "0x5 2x25"),
    ]
    alerts_at_20m: list[dict[str, Any]] = [
        {
            "exp_labels": {"severity": "ticket", "route": "bad"},
            "exp_annotations": {
                "summary": "route bad: 10% of shadow comparisons differ",
                "description": "Open the dashboard's shadow panel for the route: per-field "
                "rates and samples show what differs.",
            },
        }
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "StranglerShadowMismatchRateHigh",
                        "exp_alerts": alerts_at_20m,
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "StranglerFallbackRateHigh",
                        "exp_alerts": [
                            _alert(
                                "page",
                                "route bad: 5% of requests fell back to legacy",
                                "The new upstream is failing; consider "
                                "`strangler flip bad legacy`.",
                                route="bad",
                            )
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "StranglerRollbackFired",
                        "exp_alerts": [
                            _alert(
                                "page",
                                "route bad was rolled back to legacy automatically (error_rate)",
                                "Clients are on the monolith again. `strangler status` shows the "
                                "reason; fix, then `strangler flip bad --reset`.",
                                route="bad",
                                reason="error_rate",
                            )
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "StranglerConfigReloadRejected",
                        "exp_alerts": [
                            _alert(
                                "ticket",
                                "a routes.yaml reload was rejected; the last good config "
                                "keeps serving",
                                "GET /api/routes shows last_reload_error; `strangler check "
                                "routes.yaml` names the key, value and line.",
                                result="rejected",
                            )
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "StranglerSyncLagHigh",
                        "exp_alerts": [
                            _alert(
                                "page",
                                "sync source shop is 1m 0s behind",
                                "The services read stale data. /api/sync on the worker shows "
                                "which tables wait.",
                                source="shop",
                            )
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "StranglerCutoverAborted",
                        "exp_alerts": [
                            _alert(
                                "ticket",
                                "a cutover of context customers to service was aborted",
                                "Nothing moved: the held writes went to the old owner, which "
                                "keeps the writes. GET /api/contexts shows the reason.",
                                context="customers",
                                to="service",
                                result="aborted",
                            )
                        ],
                    },
                    # Long after the rollback and the rejected reload, both are quiet again.
                    {"eval_time": "29m", "alertname": "StranglerRollbackFired", "exp_alerts": []},
                    {
                        "eval_time": "29m",
                        "alertname": "StranglerConfigReloadRejected",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def _alert(severity: str, summary: str, description: str = "", **labels: str) -> dict[str, Any]:
    annotations = {"summary": summary} | ({"description": description} if description else {})
    return {"exp_labels": {"severity": severity, **labels}, "exp_annotations": annotations}


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    queries = _dashboard_queries()
    assert len(queries) >= 10
    # promtool parses PromQL in rule files: each query becomes a recording rule, with
    # Grafana's variables given the values Grafana would substitute.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query{i}",
                        "expr": q.replace("$__rate_interval", "5m").replace("$route", ".*"),
                    }
                    for i, q in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    done = _promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_layout_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, f"panel {p['title']!r} leaves the grid"
        own = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not own & cells, f"panel {p['title']!r} overlaps another"
        cells |= own
        assert p["datasource"]["uid"] == "${datasource}"


def test_rules_and_dashboard_name_only_metrics_strangler_exposes() -> None:
    exposed = _exposed_names()
    used = _used_names(RULES.read_text()) | _used_names("\n".join(_dashboard_queries()))
    # A histogram's TYPE line names NAME; it is queried as NAME_bucket.
    unknown = {
        n
        for n in used
        if n not in exposed and re.sub(r"_(total|bucket|sum|count)$", "", n) not in exposed
    }
    assert not unknown, f"not in strangler's /metrics: {sorted(unknown)}"
