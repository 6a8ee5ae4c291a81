"""`strangler serve` with `state: memory://`, shadowed routes and two workers.

The supervisor keeps the shadow results as it keeps the state: the admin API, the
metrics and automatic rollback see the comparisons of every worker, not one's share.
Which worker mirrored a request is read from the kernel (:mod:`tests.serve.workers`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strangler.process import worker_count
from tests.control.conftest import eventually
from tests.serve.support import ServeProcess
from tests.serve.workers import (
    HEADERS,
    Seen,
    burst,
    children,
    gets_on_each,
    pinned,
    two_workers,
)


async def shadow_report(admin: aiohttp.ClientSession, serve: ServeProcess) -> dict[str, Any]:
    async with admin.get(serve.admin + "/api/routes/customers/shadow", headers=HEADERS) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def shadow_metric(admin: aiohttp.ClientSession, serve: ServeProcess, outcome: str) -> float:
    async with admin.get(serve.admin + "/metrics") as response:
        text = await response.text()
    pattern = rf'^strangler_shadow_total{{[^}}]*outcome="{outcome}"[^}}]*}} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.MULTILINE))


def mirrored_by(seen: Seen, side: str, start: int = 0) -> Counter[int | None]:
    """Worker -> copies it sent to ``side`` (the shadow target) since ``start``."""
    return Counter(w for w, s in seen.answers[start:] if s == side)


async def test_shadow_counts_are_every_worker_s_comparisons(tmp_path: Path) -> None:
    """In shadow mode legacy answers and the new service (which answers differently) gets
    a copy: /api/shadow counts one mismatch per request sent, whichever worker served it,
    and so does the summed strangler_shadow_total."""
    async with (
        two_workers(tmp_path, mode="shadow") as (serve, seen),
        aiohttp.ClientSession() as admin,
    ):
        sent = 0
        for _ in range(20):
            statuses = await burst(serve)
            assert set(statuses) == {200}, statuses
            sent += len(statuses)
            if len(set(mirrored_by(seen, "new")) - {None}) == 2:
                break
        await eventually(lambda: sum(mirrored_by(seen, "new").values()) == sent)
        by_worker = mirrored_by(seen, "new")  # every request mirrored once, by its worker
        assert len(by_worker) == 2 and None not in by_worker, by_worker
        assert all(n < sent for n in by_worker.values())

        async def all_counted() -> bool:
            return bool((await shadow_report(admin, serve))["counts"]["mismatch"] >= sent)

        await eventually(all_counted, timeout=20)
        report = await shadow_report(admin, serve)
        assert report["counts"] == {
            "match": 0,
            "mismatch": sent,
            "error": 0,
            "dropped": 0,
            "skipped": 0,
        }
        assert report["mismatch_rate"] == 1.0
        assert report["samples"], report
        assert {d["path"] for d in report["samples"][0]["differences"]} == {"body.side"}

        async def metric_summed() -> bool:
            return await shadow_metric(admin, serve, "mismatch") == sent

        await eventually(metric_summed, timeout=20)

        async def match_rate_shown() -> bool:  # what `flip` and the canary gate read
            async with admin.get(serve.admin + "/api/routes") as response:
                (route,) = (await response.json())["routes"]
            return bool(route["shadow_match_rate"] == 0.0)

        await eventually(match_rate_shown, timeout=20)

        # A reset through the admin API empties the one shared store.
        async with admin.post(
            serve.admin + "/api/routes/customers/shadow/reset", headers=HEADERS
        ) as response:
            assert response.status == 200, await response.text()

        async def emptied() -> bool:
            return bool((await shadow_report(admin, serve))["compared"] == 0)

        await eventually(emptied, timeout=20)


async def test_a_mismatch_rate_rollback_counts_both_workers_comparisons(tmp_path: Path) -> None:
    """The route answers from new and mirrors to legacy; 20 mismatching comparisons, 10 made
    by each worker, roll it back at min_requests 20: neither worker compared 20 alone."""
    keys = (
        "    shadow: {percent: 100}\n"
        "    rollback: {mismatch_rate: 0.5, min_requests: 20, window: 60s}\n"
    )
    async with (
        two_workers(tmp_path, mode="new", route_keys=keys) as (serve, seen),
        aiohttp.ClientSession() as admin,
    ):
        # Connections held by each worker, opened on an unmatched path (not mirrored).
        held = await pinned(serve, 2, "/elsewhere")
        warmed = len(seen.answers)

        statuses = await gets_on_each(held, 5)
        assert set(statuses) == {200}

        async def routes() -> dict[str, Any]:
            async with admin.get(serve.admin + "/api/routes") as response:
                (route,) = (await response.json())["routes"]
                return dict(route)

        async def rolled_back() -> bool:
            route = await routes()
            return bool(route["source"] == "auto-rollback" and route["mode"] == "legacy")

        await eventually(rolled_back, timeout=20)
        # The copies to legacy came from both workers, ten each.
        assert mirrored_by(seen, "legacy", warmed) == Counter(dict.fromkeys(held, 10))
        async with admin.get(serve.admin + "/api/audit") as response:
            (entry,) = (await response.json())["entries"]
        assert entry["action"] == "auto-rollback"
        assert "shadow mismatch rate 100.0%" in entry["reason"], entry
        assert "20 of 20 comparisons" in entry["reason"], entry

        async def all_in_the_report() -> bool:  # flushed apart from the rollback counts
            return bool((await shadow_report(admin, serve))["counts"]["mismatch"] == 20)

        await eventually(all_in_the_report, timeout=20)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one worker either way")
async def test_memory_state_with_a_shadowed_route_runs_one_worker_per_core(
    tmp_path: Path,
) -> None:
    async with (
        two_workers(tmp_path, mode="shadow", workers=()) as (serve, _),
        aiohttp.ClientSession() as admin,
    ):
        cores = os.cpu_count() or 1
        assert len(children(serve.process.pid)) == cores + 1  # and the admin process
        assert set(await burst(serve)) == {200}

        async def counted() -> bool:
            return bool((await shadow_report(admin, serve))["counts"]["mismatch"] == 20)

        await eventually(counted, timeout=20)


def test_the_default_is_one_worker_per_core() -> None:
    cores = os.cpu_count() or 1
    assert worker_count(0) == cores
    assert worker_count(3) == 3
