"""routes.yaml validation: what a user sees when the file is wrong, and what it means when right."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.config import load_config, parse_config_text
from strangler.errors import ConfigError

BASE = """
legacy: monolith
upstreams:
  monolith: {url: http://127.0.0.1:9000}
  customers: {url: http://127.0.0.1:9101, timeout: 1500ms}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, env=env or {})
    return [str(p) for p in caught.value.problems]


def test_the_design_example_loads_with_units_and_interpolation() -> None:
    config = parse_config_text(
        BASE
        + """
admin: {listen: 127.0.0.1:8081, token: ${TOKEN}}
state: ${STATE:-memory://}
routes:
  - name: customers
    match: {path: /api/customers/**, methods: [get, POST], headers: {X-Tenant: acme}}
    to: customers
    mode: canary
    percent: 25
    sticky: [header:X-User-Id, cookie:sid, ip]
    shadow: {max_body: 2MiB, compare: {ignore: [body.updated_at]}}
    rollback: {error_rate: 0.05, window: 1m}
""",
        env={"TOKEN": "s3cret"},
    )
    route = config.routes[0]
    assert config.admin.token is not None and config.admin.token.get_secret_value() == "s3cret"
    assert config.state.url == "memory://"
    assert config.upstreams["customers"].timeout == 1.5
    assert route.match.methods == ("GET", "POST")
    assert route.shadow is not None and route.shadow.max_body == 2 * 1024 * 1024
    assert route.rollback is not None and route.rollback.window == 60.0
    assert "s3cret" not in repr(config)  # the token never shows in logs or reprs


def test_every_problem_is_reported_with_its_key_path_and_value() -> None:
    found = problems(
        BASE
        + """
routes:
  - name: a
    match: {path: /a}
    to: customers
    mode: canary
    percent: 140
    colour: blue
  - name: b
    match: {path: b}
    to: customers
    mode: sideways
    sticky: [session]
"""
    )
    assert "routes[0].percent: 140 is out of range: more than 100" in found
    assert "routes[0].colour: unknown key" in found
    assert any(p.startswith("routes[1].match.path: 'b'") for p in found), found
    assert any(p.startswith("routes[1].mode:") and "sideways" in p for p in found), found
    assert any(p.startswith("routes[1].sticky") and "'session'" in p for p in found), found


def test_cross_checks_name_the_key_and_the_value() -> None:
    found = problems(
        """
legacy: mainframe
upstreams:
  monolith: {url: http://127.0.0.1:9000}
routes:
  - {name: a, match: {path: /a}, to: nowhere}
  - {name: a, match: {path: /b}, to: monolith, mode: shadow, percent: 5}
  - {name: c, match: {path: /c}, to: monolith, mode: canary}
  - {name: d, match: {path: /d}, to: monolith, adapter: "no_such_module:Thing"}
"""
    )
    assert "legacy: 'mainframe' is not one of upstreams" in found
    assert "routes[0].to: 'nowhere' is not one of upstreams" in found
    assert "routes[1].name: 'a' is already used by routes[0]" in found
    assert "routes[1].percent: 5 is only meaningful with mode canary" in found
    assert "routes[2].percent: is required with mode canary" in found
    assert any(
        p.startswith("routes[3].adapter: 'no_such_module:Thing' does not import") for p in found
    )


def test_an_unset_variable_is_named_when_the_config_fails() -> None:
    found = problems(BASE.replace("http://127.0.0.1:9000", "${MONOLITH_URL}"))
    assert "${MONOLITH_URL} is not set in the environment" in found
    assert any(p.startswith("upstreams.monolith.url") for p in found), found


def test_an_unset_token_means_no_token_not_an_empty_one() -> None:
    config = parse_config_text(BASE + "admin: {token: ${STRANGLER_ADMIN_TOKEN}}\n", env={})
    assert config.admin.token is None


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ("listen: 8080", "listen"),
        ("upstreams: {monolith: {url: ftp://x}}", "upstreams.monolith.url"),
        ("upstreams: {monolith: {url: http://x, timeout: soon}}", "upstreams.monolith.timeout"),
        ("limits: {max_body: lots}", "limits.max_body"),
        ("state: mysql://x", "state.url"),
    ],
)
def test_bad_values_name_their_key(snippet: str, key: str) -> None:
    text = "legacy: monolith\nupstreams: {monolith: {url: http://127.0.0.1:9000}}\n"
    if snippet.startswith("upstreams"):
        text = "legacy: monolith\n"
    found = problems(text + snippet + "\n")
    assert any(p.startswith(key + ":") for p in found), found


def test_the_file_is_read_and_adapters_import_from_its_folder(tmp_path: Path) -> None:
    (tmp_path / "myadapters.py").write_text(
        "class Api:\n    def request(self, r): return r\n    def response(self, q, r): return r\n"
    )
    path = tmp_path / "routes.yaml"
    path.write_text(
        BASE
        + "routes:\n  - {name: a, match: {path: /a}, to: customers, adapter: 'myadapters:Api'}\n"
    )
    assert load_config(path, env={}).routes[0].adapter == "myadapters:Api"
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml", env={})
    assert "cannot read" in str(caught.value)
    path.write_text("legacy: [unclosed")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "not valid YAML" in str(caught.value)
