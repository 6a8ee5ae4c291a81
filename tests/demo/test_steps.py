"""The demo's step runner: a failing check stops the run and names the step."""

from __future__ import annotations

import io

from strangler.demo.report import Report
from strangler.demo.steps import Step, check, run_steps


async def test_a_failing_check_names_the_step_and_stops_the_run() -> None:
    ran: list[str] = []

    async def good(ctx: list[str]) -> None:
        ctx.append("good")
        check(True, "never shown")

    async def bad(ctx: list[str]) -> None:
        ctx.append("bad")
        check(1 + 1 == 3, "measured 2, expected 3")

    async def later(ctx: list[str]) -> None:
        ctx.append("later")

    out = io.StringIO()
    outcome = await run_steps(
        [
            Step("good", "A good step", good),
            Step("bad", "A bad step", bad),
            Step("later", "L", later),
        ],
        ran,
        Report(out),
    )
    assert not outcome.ok
    assert outcome.failed == "step 2 (bad)"
    assert ran == ["good", "bad"]
    text = out.getvalue()
    assert "[1/3] A good step" in text and "[ok]" in text
    assert "[FAILED]" in text and "measured 2, expected 3" in text
    assert "Demo FAILED at step 2 (bad) (1 of 3 steps passed" in text


async def test_a_crashing_step_is_a_failure_with_its_trace() -> None:
    async def crash(ctx: None) -> None:
        raise KeyError("CUST_ID")

    out = io.StringIO()
    outcome = await run_steps([Step("crash", "Crashes", crash)], None, Report(out))
    assert outcome.failed == "step 1 (crash)"
    assert "KeyError" in out.getvalue() and "Traceback" in out.getvalue()
