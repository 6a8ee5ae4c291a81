"""How ``strangler demo`` talks to the person running it: one block per step, with its proofs.

Plain text on purpose: it reads the same in a terminal, a CI log and the README.
Every line a step prints through :class:`Report` is a figure it measured or a
check it made; this module only formats, it never decides whether a step passed.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Report:
    """Prints the demo's banner, each step's title, proof lines and verdict."""

    def __init__(self, out: TextIO | None = None, total: int = 0) -> None:
        self._out = out if out is not None else sys.stdout
        self.total = total
        self._started = time.monotonic()
        self._step_started = self._started

    def _line(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def banner(self, title: str, *lines: str) -> None:
        self._line(title)
        for line in lines:
            self._line(f"  {line}")
        self._line()

    def begin(self, number: int, title: str) -> None:
        self._step_started = time.monotonic()
        self._line(f"[{number}/{self.total}] {title}")

    def proof(self, text: str) -> None:
        """One measured figure or observed fact, indented under the step."""
        self._line(f"      {text}")

    def note(self, text: str) -> None:
        """Context that is not itself a proof (what is about to happen, why)."""
        self._line(f"      · {text}")

    def passed(self) -> None:
        elapsed = time.monotonic() - self._step_started
        self._line(f"      [ok] passed in {elapsed:.1f}s")
        self._line()

    def failed(self, number: int, title: str, reason: str) -> None:
        elapsed = time.monotonic() - self._step_started
        self._line(f"      [FAILED] after {elapsed:.1f}s: {reason}")
        self._line()

    def summary(self, passed: int, failed_step: str | None) -> None:
        elapsed = time.monotonic() - self._started
        if failed_step is None:
            self._line(f"All {passed} steps passed in {elapsed:.1f}s.")
        else:
            self._line(
                f"Demo FAILED at {failed_step} ({passed} of {self.total} steps passed, "
                f"{elapsed:.1f}s)."
            )

    def block(self, *lines: str) -> None:
        for line in lines:
            self._line(line)
