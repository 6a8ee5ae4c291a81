"""`strangler check`: one line per problem naming key and value (exit 2), or a summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import routes_yaml


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_valid_file_prints_a_summary_and_exits_0(config_file: Path) -> None:
    result = check(config_file)
    assert result.returncode == 0, result.stderr
    assert f"{config_file}: ok" in result.stdout
    assert "customers: /api/customers/** -> customers [legacy]" in result.stdout


def test_each_problem_is_one_line_naming_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(routes_yaml(mode="canary\n    percent: 140\n    colour: blue"))
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("routes[0].percent" in line and "140" in line for line in lines), lines
    assert any("routes[0].colour" in line and "unknown key" in line for line in lines), lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert result.stdout == ""


def test_ambiguous_routes_are_caught_by_check(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        routes_yaml(
            extra="""\
              - name: customers-again
                match: {path: "/api/customers/**"}
                to: customers
            """
        )
    )
    result = check(path)
    assert result.returncode == 2
    assert "routes[1].match" in result.stderr and "'customers'" in result.stderr


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
