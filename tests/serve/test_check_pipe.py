"""`strangler check routes.yaml | head -1`: a reader that goes away early is not an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_check_into_a_closed_pipe_exits_quietly(config_file: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "strangler", "check", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `head -1` having read its line and exited
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_check_piped_to_head_prints_the_first_line_only(config_file: Path) -> None:
    result = subprocess.run(
        f"'{sys.executable}' -m strangler check '{config_file}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == f"{config_file}: ok\n"
    assert result.stderr == "", result.stderr
