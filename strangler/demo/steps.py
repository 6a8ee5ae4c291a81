"""The demo's step machinery: a step is a titled coroutine whose checks can fail.

A step proves what it claims by measuring it and calling :func:`check`; a false
check raises :class:`CheckFailed` with a message naming what was expected and
what was measured. Steps run in order and the run stops at the first failure,
because each step builds on the state the previous one left (a canary after a
failed shadow would prove nothing). This module never knows what the steps do.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from strangler.demo.report import Report
from strangler.errors import StranglerError

C = TypeVar("C")


class CheckFailed(StranglerError):
    """A demo step's check did not hold; the message says what was measured."""


def check(condition: bool, message: str) -> None:
    """Fail the current step with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class Step(Generic[C]):
    key: str
    """Short name used on the command line (``--break``) and in the failure line."""
    title: str
    run: Callable[[C], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    passed: int
    failed: str | None
    """``"step N (key)"`` of the failing step, or None when every step passed."""
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


async def run_steps(steps: Sequence[Step[C]], context: C, report: Report) -> Outcome:
    """Run ``steps`` in order against ``context``; stop at the first failing check."""
    report.total = len(steps)
    for number, step in enumerate(steps, start=1):
        report.begin(number, step.title)
        try:
            await step.run(context)
        except CheckFailed as exc:
            reason = str(exc)
        except StranglerError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug or a crash is a failed step, shown with its trace
            reason = f"{type(exc).__name__}: {exc}"
            report.block(*("      | " + line for line in traceback.format_exc().splitlines()))
        else:
            report.passed()
            continue
        name = f"step {number} ({step.key})"
        report.failed(number, step.title, reason)
        report.summary(number - 1, name)
        return Outcome(passed=number - 1, failed=name, reason=reason)
    report.summary(len(steps), None)
    return Outcome(passed=len(steps), failed=None)
