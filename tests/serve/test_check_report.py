"""`strangler check` lists every problem of a file in one run: schema errors and
cross-references together, each with its line number and, where it can, a hint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MANY_PROBLEMS = """\
# the token comes from ${STRANGLER_TEST_NEVER_SET} (a comment: never expanded)
legacy: monolith
upstreams:
  monolith: {url: http://127.0.0.1:9000}
  customers:
    url: http://127.0.0.1:9101
    timeout: soonish
routes:
  - name: customers
    match: {path: /api/customers/**}
    to: custmers
    mode: canary
    precent: 25
  - name: customers
    match: {path: /api/orders/**}
    to: customers
    mode: shadow
    percent: high
contexts:
  billing:
    routes: [invoices]
"""


def check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_every_problem_is_listed_in_one_run_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(MANY_PROBLEMS)
    result = check(path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith(f"{path}: line ") for line in lines), lines
    expected = [
        "line 7: upstreams.customers.timeout: 'soonish' is not a duration",
        "line 9: routes[0].percent: is required with mode canary",
        "line 11: routes[0].to: 'custmers' is not one of upstreams "
        "(did you mean 'customers'? upstreams: monolith, customers)",
        "line 13: routes[0].precent: unknown key (did you mean 'percent'?)",
        "line 14: routes[1].name: 'customers' is already used by routes[0]",
        "line 18: routes[1].percent: 'high'",
        "line 21: contexts.billing.routes: 'invoices' is not one of routes (routes: customers)",
    ]
    for want in expected:
        assert any(want in line for line in lines), (want, lines)
    assert len(lines) == len(expected), lines  # one line per problem, nothing about the comment
    assert "STRANGLER_TEST_NEVER_SET" not in result.stderr


def test_an_unset_variable_in_a_value_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(MANY_PROBLEMS.replace("http://127.0.0.1:9000", "${STRANGLER_TEST_URL}"))
    result = check(path)
    assert result.returncode == 2
    assert f"{path}: line 4: ${{STRANGLER_TEST_URL}} is not set in the environment" in (
        result.stderr
    )
    assert "line 4: upstreams.monolith.url" in result.stderr


def test_variables_expand_in_values_with_defaults_flow_style_included(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "# ${NOT_SET_ANYWHERE} in a comment is fine\n"
        "listen: 127.0.0.1:${STRANGLER_TEST_PORT}\n"
        "legacy: monolith\n"
        "upstreams:\n"
        "  monolith: {url: '${STRANGLER_TEST_URL:-http://127.0.0.1:9000}', timeout: ${T:-2s}}\n"
    )
    result = check(path, {"STRANGLER_TEST_PORT": "8099"})
    assert result.returncode == 0, result.stderr
    assert "listen 127.0.0.1:8099" in result.stdout


def test_the_shipped_routes_yaml_passes(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "routes.yaml"
    result = check(shipped)
    assert result.returncode == 0, result.stderr
    assert f"{shipped}: ok" in result.stdout


def test_path_patterns_and_ties_come_in_the_same_run_as_schema_errors(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "legacy: monolith\n"
        "upstreams:\n"
        "  monolith: {url: http://127.0.0.1:9000, timeout: forever}\n"
        "routes:\n"
        "  - {name: a, match: {path: '/x/{id}'}, to: monolith}\n"
        "  - {name: broken, match: {path: /z}, to: monolith, mode: sideways}\n"
        "  - {name: b, match: {path: '/x/{key}'}, to: monolith}\n"
        "  - {name: c, match: {path: '/y/{oops'}, to: monolith}\n"
    )
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("line 3: upstreams.monolith.timeout: 'forever'" in line for line in lines), lines
    assert any("line 6: routes[1].mode" in line for line in lines), lines
    # numbered as in the file, although routes[1] did not validate
    assert any("line 7: routes[2].match: '/x/{key}' ties with route 'a'" in x for x in lines)
    assert any("line 8: routes[3].match.path: '/y/{oops'" in line for line in lines), lines


def test_a_sync_cross_reference_is_keyed_and_located_with_the_valid_names(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "legacy: monolith\n"
        "upstreams:\n"
        "  monolith: {url: http://127.0.0.1:9000, timeout: never}\n"
        "sync:\n"
        "  sources:\n"
        "    - name: shop\n"
        "      kind: sqlite\n"
        "      options: {database: shop.db, tables: [customer]}\n"
        "  targets:\n"
        "    customers: sqlite:///customers.db\n"
        "  tables:\n"
        "    - source: customer\n"
        "      target: customer\n"
        "      adapter: {table: customers, key: [id]}\n"
    )
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{path}: line 3: upstreams.monolith.timeout: 'never' is not a duration "
        "(use e.g. 2s or 500ms)",
        f"{path}: line 13: sync.tables[0].target: 'customer' is not one of targets "
        "(did you mean 'customers'? targets: customers)",
    ]


def test_invalid_yaml_is_one_line_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("legacy: monolith\nupstreams:\n  monolith: {url: http://x\nroutes: []\n")
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: line 4: not valid YAML: while parsing a flow mapping")


def test_a_typo_inside_a_declarative_adapter_is_the_only_line(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "legacy: monolith\n"
        "upstreams: {monolith: {url: http://127.0.0.1:9000}}\n"
        "routes:\n"
        "  - name: a\n"
        "    match: {path: /a}\n"
        "    to: monolith\n"
        "    adapter: {pathh: /x}\n"
    )
    result = check(path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{path}: line 7: routes[0].adapter.pathh: unknown key (did you mean 'path'?)"
    ]
