"""The repository's own routes.yaml files are valid configs that say what the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from strangler.config import load_config
from strangler.routing.table import RouteTable

ROOT = Path(__file__).resolve().parents[2]


def test_routes_yaml_passes_strangler_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(ROOT / "routes.yaml")],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_routes_yaml_shows_each_lifecycle_stage_and_the_sync() -> None:
    config = load_config(ROOT / "routes.yaml", env={})
    modes = {route.name: route.mode for route in config.routes}
    assert modes == {"customers": "canary", "customer-writes": "legacy", "products": "shadow"}
    assert config.legacy == "monolith"
    assert config.admin.token is None  # unset variable: writes refused, never open
    products = config.route("products")
    assert products is not None and products.shadow is not None
    assert "body.AS_OF_TS" in products.shadow.compare.ignore
    assert config.sync is not None
    assert {t.adapter for t in config.sync.tables} == {
        "adapters.customers:CustomerRows",
        "adapters.catalog:ProductRows",
    }
    table = RouteTable.build(config, {})
    for method, path, name in (
        ("GET", "/api/customers", "customers"),
        ("GET", "/api/customers/7", "customers"),
        ("PUT", "/api/customers/7", "customer-writes"),
        ("GET", "/api/products/3", "products"),
    ):
        match = table.match(method, path, {})
        assert match is not None and match.route.name == name
    assert table.match("GET", "/api/orders/1", {}) is None  # orders stay on the monolith


def test_compose_routes_yaml_is_valid() -> None:
    env = {"STRANGLER_ADMIN_TOKEN": "t", "POSTGRES_PASSWORD": "p"}
    path = ROOT / "deploy" / "routes.compose.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_config(path, env=env)
    assert config.state.url.startswith("redis://")
    assert config.sync is not None and config.sync.sources[0].kind == "kafka"
