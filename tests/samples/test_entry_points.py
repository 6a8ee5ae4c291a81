"""``python -m sample_monolith`` and ``python -m sample_services.X`` start real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.net import free_port, wait_for_port


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_apps_start_from_the_shell(tmp_path: Path) -> None:
    runs = [
        ("sample_monolith", ["--seed", "30"], "/api/customers?size=5", "TOTAL_CNT", 30),
        ("sample_services.customers", [], "/v2/customers", "total", 0),
        ("sample_services.catalog", [], "/v2/products", "total", 0),
    ]
    for module, extra, path, field, expected in runs:
        port = free_port()
        db = f"sqlite:///{tmp_path / module}.db"
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), "--db", db, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        try:
            wait_for_port(port, timeout=30)
            base = f"http://127.0.0.1:{port}"
            assert isinstance(_get(base + "/healthz"), dict)
            answer = _get(base + path)
            assert isinstance(answer, dict) and answer[field] == expected, module
        finally:
            process.terminate()
            process.wait(timeout=10)
