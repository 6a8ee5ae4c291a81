"""Fixtures for the serve tests: routes.yaml files on disk."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

BASE = """\
listen: 127.0.0.1:{port}
admin:
  listen: 127.0.0.1:{admin_port}
  token: secret
state: {state}
legacy: monolith
upstreams:
  monolith: {{url: "{legacy_url}"}}
  customers: {{url: "{new_url}"}}
routes:
  - name: customers
    match: {{path: /api/customers/**}}
    to: customers
    mode: {mode}
"""


def routes_yaml(
    *,
    port: int = 8080,
    admin_port: int = 8081,
    state: str = "memory://",
    legacy_url: str = "http://127.0.0.1:9000",
    new_url: str = "http://127.0.0.1:9101",
    mode: str = "legacy",
    extra: str = "",
) -> str:
    text = BASE.format(
        port=port,
        admin_port=admin_port,
        state=state,
        legacy_url=legacy_url,
        new_url=new_url,
        mode=mode,
    )
    return text + textwrap.indent(textwrap.dedent(extra), "  ")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(routes_yaml())
    return path
