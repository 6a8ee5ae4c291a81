"""`strangler explain METHOD URL`: the route, mode and upstream that would answer,
through the real CLI, for each kind of match."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROUTES = """\
legacy: monolith
upstreams:
  monolith: {url: http://127.0.0.1:9000}
  customers: {url: http://127.0.0.1:9101}
  orders: {url: http://127.0.0.1:9102}
routes:
  - name: health
    match: {path: /api/health}
    to: customers
    mode: new
  - name: customer
    match: {path: "/api/customers/{id}", methods: [GET]}
    to: customers
    mode: new
    adapter: {path: "/v2/customers/{id}"}
  - name: customers
    match: {path: /api/customers/**}
    to: customers
    mode: shadow
  - name: acme-orders
    match: {path: /api/orders/**, headers: {X-Tenant: acme}}
    to: orders
    mode: new
    fallback: true
  - name: orders
    match: {path: /api/orders/**}
    to: orders
    mode: canary
    percent: 50
    sticky: [header:X-User-Id, cookie:sid]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return path


def explain(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strangler", "explain", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def fields(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    out = {}
    for line in result.stdout.splitlines()[1:]:
        name, _, value = line.strip().partition(" ")
        out[name] = value.strip()
    return out


def test_an_exact_route(config: Path) -> None:
    found = fields(explain(config, "GET", "/api/health"))
    assert found["route"].startswith("health ")
    assert found["mode"] == "new (from config)"
    assert found["answers"] == "customers (to_new: yes)"
    assert found["upstream"] == "http://127.0.0.1:9101"
    assert "routes.yaml only" in found["modes"]


def test_a_param_route_with_its_method_and_adapter(config: Path) -> None:
    found = fields(explain(config, "get", "http://shop.example/api/customers/42?x=1"))
    assert found["route"].startswith("customer ") and found["params"] == "id=42"
    assert found["adapter"] == "declarative (path /v2/customers/{id})"
    # the {id} route only takes GET: a PUT falls to the /** subtree (shadow: legacy answers)
    found = fields(explain(config, "PUT", "/api/customers/42"))
    assert found["route"].startswith("customers ")
    assert found["mode"] == "shadow (from config)"
    assert found["answers"] == "monolith (to_new: no)"
    assert found["shadow"] == "customers"


def test_a_subtree_route_and_a_header_constraint(config: Path) -> None:
    found = fields(explain(config, "GET", "/api/orders/7/lines", "-H", "X-Tenant: acme"))
    assert found["route"].startswith("acme-orders ")
    assert found["answers"] == "orders (to_new: yes)"
    assert found["fallback"] == "yes: legacy answers if orders fails"
    found = fields(explain(config, "GET", "/api/orders/7/lines", "-H", "X-Tenant: other"))
    assert found["route"].startswith("orders ")


def test_an_unmatched_path_goes_to_legacy(config: Path) -> None:
    found = fields(explain(config, "GET", "/elsewhere"))
    assert found["route"] == "- (no route matches)"
    assert found["answers"].startswith("monolith")
    assert found["upstream"] == "http://127.0.0.1:9000"


def _canary(config: Path, *headers: str) -> tuple[int, str]:
    args = [a for h in headers for a in ("-H", h)]
    found = fields(explain(config, "GET", "/api/orders/1", *args))
    assert found["mode"] == "canary 50% (from config)"
    match = re.search(r"bucket (\d+) of 10000", found["canary"])
    assert match, found
    bucket = int(match.group(1))
    expected = "orders (to_new: yes)" if bucket < 5000 else "monolith (to_new: no)"
    assert found["answers"] == expected  # the side shown agrees with bucket vs percent
    return bucket, found["canary"]


def test_canary_stickiness_by_header_and_by_cookie(config: Path) -> None:
    first, text = _canary(config, "X-User-Id: u-17")
    assert "sticky key header:u-17" in text
    assert _canary(config, "X-User-Id: u-17")[0] == first  # same user, same bucket
    buckets = {_canary(config, f"X-User-Id: u-{n}")[0] for n in range(6)}
    assert len(buckets) > 1  # different users spread
    by_cookie, text = _canary(config, "Cookie: theme=dark; sid=abc")
    assert "sticky key cookie:abc" in text
    assert _canary(config, "Cookie: sid=abc")[0] == by_cookie
    # the header comes first in sticky:, so it wins over the cookie
    assert _canary(config, "X-User-Id: u-17", "Cookie: sid=abc")[0] == first
    _, text = _canary(config)
    assert "no sticky key on this request" in text


def test_bad_arguments_and_a_bad_config_exit_2(config: Path, tmp_path: Path) -> None:
    result = explain(config, "FETCH", "/x")
    assert result.returncode == 2 and "not an HTTP method" in result.stderr
    result = explain(config, "GET", "/x", "-H", "no colon")
    assert result.returncode == 2 and "'Name: value'" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUTES.replace("to: orders\n    mode: canary", "to: ordrs\n    mode: canary"))
    result = explain(bad, "GET", "/x")
    assert result.returncode == 2
    assert "line 27: routes[4].to: 'ordrs' is not one of upstreams" in result.stderr
