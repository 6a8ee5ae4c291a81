"""Acceptance: 4 writers through the proxy while 10 cutovers alternate service/legacy.

Afterwards every acknowledged write is in both databases exactly once, none failed,
and the two databases agree (verify is clean both ways)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp

from strangler.sync.verify import Verifier
from strangler.sync.verify_back import WayBackVerifier

from .shop import TOKEN, Shop, Writer, shop, until_aligned


async def test_writers_lose_nothing_while_ten_cutovers_alternate(tmp_path: Path) -> None:
    async with shop(tmp_path) as found:
        await ten_cutovers_under_four_writers(found)


async def ten_cutovers_under_four_writers(found: Shop) -> None:
    async with aiohttp.ClientSession() as session:
        writers = [Writer(f"w{i}") for i in range(4)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(session, found.url, stop)) for w in writers]
        results = []
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for i in range(10):
            await asyncio.sleep(0.4)
            to = "service" if i % 2 == 0 else "legacy"
            async with session.post(
                f"{found.admin}/api/contexts/customers/cutover", json={"to": to}, headers=headers
            ) as response:
                results.append((response.status, await response.json()))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)

        assert [status for status, _ in results] == [200] * 10, [b.get("error") for _, b in results]
        assert [body["owner"] for _, body in results] == ["service", "legacy"] * 5
        assert [w.failures for w in writers] == [[]] * 4
        answered = Counter()
        for w in writers:
            answered.update(w.answered_by)
        assert answered["customers"] > 0 and answered["monolith"] > 0, answered

        await until_aligned(found)
        legacy = dict(await asyncio.to_thread(found.monolith_rows))
        service = dict(await asyncio.to_thread(found.service_rows))
        legacy_names = Counter(legacy.values())
        service_names = Counter(service.values())
        for w in writers:
            for ident, name in w.created.items():
                assert legacy.get(ident) == name, (w.name, ident, name, legacy.get(ident))
                assert service.get(ident) == name, (w.name, ident, name, service.get(ident))
            for name in w.creates:
                # Created once, in both (a renamed one under its latest name).
                renamed = name not in w.created.values()
                if not renamed:
                    assert legacy_names[name] == 1 and service_names[name] == 1, name
        assert len(legacy) == len(service)

        assert found.config.sync is not None
        # Clean both ways: the service's tables against the monolith's mapped forward, and
        # the monolith's against the service's mapped back (the way back's adapters).
        for verifier in (
            Verifier(found.config.sync, found.folder),
            WayBackVerifier(found.config.sync, found.folder),
        ):
            report = await asyncio.to_thread(verifier.run, lag_window=1.0)
            assert not report.drift and not report.unmappable, (verifier, report.drift[:5])
        holds = sorted(body["held_seconds"] for _, body in results)
        print(f"hold p50 {holds[4]:.3f}s max {holds[-1]:.3f}s")
