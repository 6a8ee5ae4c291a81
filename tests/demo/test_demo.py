"""``strangler demo --exit`` end to end, as CI and a new user run it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# One proof line per step: what a reader of the output must be able to see.
PROOFS = (
    ("monolith", "seeded: CUSTOMER 2,000 rows"),
    ("monolith", "GET /api/customers/1 -> 200 from monolith"),
    ("sync", "verify: "),
    ("sync", "row in the service DB"),
    ("shadow", "mismatching field body.CREDIT_LIMIT_CENTS"),
    ("shadow", "fresh traffic after the fix"),
    ("canary", "canary 10%:"),
    ("canary", "canary 50%:"),
    ("canary", "0 of them moved back to legacy"),
    ("new", "100.0% served by customers"),
    ("new", "mirrored back to monolith and compared"),
    ("new", "customers get identical JSON"),
    ("failure", "0 errors seen by clients"),
    ("failure", "source auto-rollback"),
    ("flip", "$ strangler flip customers --reset  -> exit 0"),
    ("flip", "source override"),
    ("verify", "verify: "),
    ("cutover", "$ strangler cutover customers --to service  -> exit 0"),
    ("cutover", "writes and data now owned by service (epoch 1); writes held "),
    ("cutover", "0 failed; before the cutover answered by {'monolith'"),
    ("cutover", "shows Grace Hopper"),
    ("cutover", "listed on the monolith's page of the customer"),
    ("back", "$ strangler cutover customers --to legacy  -> exit 0"),
    ("back", "written by the non-owner 0"),
)


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strangler", "demo", "--exit", "--workdir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_demo_exit_passes_every_step_and_prints_its_proofs(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for step, proof in PROOFS:
        assert proof in out, f"step {step}: {proof!r} not printed"
    assert "All 10 steps passed" in out
    assert "[FAILED]" not in out
    # the demo leaves a real, loadable routes.yaml behind in the folder it was given
    check = subprocess.run(
        [sys.executable, "-m", "strangler", "check", str(tmp_path / "routes.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
