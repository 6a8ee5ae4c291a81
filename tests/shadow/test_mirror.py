"""The mirror off the client's path, against real upstreams on loopback."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp

from tests.shadow.conftest import Lab, dead_url, drain, route_config


async def timed_gets(url: str, n: int, path: str = "/api/customers/1") -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            started = time.perf_counter()
            async with session.get(url + path, headers={"X-User-Id": str(i)}) as resp:
                assert resp.status == 200
                await resp.read()
            out.append(time.perf_counter() - started)
    return out


async def test_a_matching_shadow_is_counted_as_match_and_marked(lab: Lab) -> None:
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    await timed_gets(url, 3)
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["match"] == 3
    assert all(seen["headers"].get("X-Strangler-Shadow") == "1" for seen in lab.new.seen)
    assert not any("X-Strangler-Shadow" in seen["headers"] for seen in lab.legacy.seen)
    assert lab.outcomes.count(("customers", "match")) == 3
    assert lab.comparisons == [("customers", True)] * 3


async def test_a_slow_shadow_does_not_slow_the_client(lab: Lab) -> None:
    lab.new.delay = 2.0
    plain, _, _ = await lab.start(route_config(lab.legacy.url, lab.new.url), shadow=False)
    shadowed, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    baseline = await timed_gets(plain, 20)
    with_shadow = await timed_gets(shadowed, 20)
    assert mirror.in_flight > 0  # the shadows really are still waiting on the slow target
    # Generous: a client that waited for the shadow would take 2 s per request.
    assert statistics.median(with_shadow) < statistics.median(baseline) + 0.25
    assert max(with_shadow) < 1.0


async def test_a_dead_shadow_target_is_an_error_and_the_client_is_served(lab: Lab) -> None:
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, dead_url()))
    await timed_gets(url, 5)
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["error"] == 5
    assert data.samples[0].error is not None and "connect" in data.samples[0].error
    assert lab.comparisons == []  # errors are not fed to rollback as mismatches


async def test_once_the_targets_breaker_opens_errors_are_counted_without_copies(
    lab: Lab,
) -> None:
    """A dead target opens the shadow pool's breaker after ``failures`` refusals; from
    then on a sampled request is counted as an error as it is decided, and no copy is
    taken or sent. Every request is still accounted for."""
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, dead_url()))
    copies = 0
    submit = mirror.submit

    def counting(decision: Any, copy: Any) -> None:
        nonlocal copies
        copies += 1
        submit(decision, copy)

    mirror.submit = counting  # type: ignore[method-assign]
    await timed_gets(url, 30)
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["error"] == 30
    # The breaker opens after 5 refusals; one error sample a second still goes through.
    assert 5 <= copies <= 10
    assert data.samples[0].error is not None


async def test_in_flight_work_is_bounded_and_drops_are_counted(lab: Lab) -> None:
    lab.new.delay = 1.0
    config = route_config(lab.legacy.url, lab.new.url, shadow={"max_in_flight": 3})
    url, mirror, _ = await lab.start(config)
    await asyncio.gather(*(timed_gets(url, 2) for _ in range(5)))
    assert mirror.in_flight <= 3
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["dropped"] >= 7
    assert data.counts["match"] + data.counts["dropped"] == 10
    assert ("customers", "dropped") in lab.outcomes


async def test_the_total_bound_applies_across_routes(lab: Lab) -> None:
    lab.new.delay = 1.0
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url), max_in_flight=2)
    await asyncio.gather(*(timed_gets(url, 2) for _ in range(3)))
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["dropped"] == 4 and data.counts["match"] == 2


async def test_a_body_over_the_limit_is_skipped(lab: Lab) -> None:
    config = route_config(
        lab.legacy.url, lab.new.url, shadow={"max_body": 1000, "methods": ["POST"]}
    )
    url, mirror, _ = await lab.start(config)
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/api/customers", data=b"x" * 5000) as resp:
            assert resp.status == 200
        async with session.post(url + "/api/customers", data=b"x" * 10) as resp:
            assert resp.status == 200
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["skipped"] == 1 and data.counts["match"] == 1
    assert len(lab.new.seen) == 1


async def test_post_is_not_mirrored_unless_listed_then_it_carries_the_marker(lab: Lab) -> None:
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/api/customers", json={"name": "Ada"}) as resp,
    ):
        assert resp.status == 200
    await drain(mirror)
    assert lab.new.seen == []

    listed = route_config(lab.legacy.url, lab.new.url, shadow={"methods": ["GET", "POST"]})
    url, mirror, _ = await lab.start(listed)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/api/customers", json={"name": "Ada"}) as resp,
    ):
        assert resp.status == 200
    await drain(mirror)
    (seen,) = lab.new.seen
    assert seen["method"] == "POST"
    assert seen["headers"]["X-Strangler-Shadow"] == "1"
    assert seen["body"] == b'{"name": "Ada"}'


async def test_a_request_already_marked_is_never_mirrored_again(lab: Lab) -> None:
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    headers = {"X-Strangler-Shadow": "1"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/api/customers/1", headers=headers) as resp,
    ):
        assert resp.status == 200
    await drain(mirror)
    assert lab.new.seen == []


async def test_sampling_is_sticky_per_user(lab: Lab) -> None:
    config = route_config(
        lab.legacy.url, lab.new.url, shadow={"percent": 50}, sticky=["header:X-User-Id"]
    )
    url, mirror, _ = await lab.start(config)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            for user in range(40):
                headers = {"X-User-Id": f"user-{user}"}
                async with session.get(url + f"/api/customers/{user}", headers=headers) as r:
                    await r.read()
    await drain(mirror)
    per_user: dict[str, int] = {}
    for seen in lab.new.seen:
        per_user[seen["path"]] = per_user.get(seen["path"], 0) + 1
    assert set(per_user.values()) == {3}  # a sampled user is mirrored on every request
    assert 5 < len(per_user) < 35


async def test_a_mismatch_is_stored_with_both_sides_and_the_differing_paths(lab: Lab) -> None:
    lab.new.body = lambda r: {"id": r.match_info.get("id"), "name": "Bob"}
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    await timed_gets(url, 1)
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["mismatch"] == 1
    assert data.fields == {"body.name": 1}
    (sample,) = data.samples
    assert '"Ada"' in sample.legacy["body"] and '"Bob"' in sample.new["body"]
    assert [d["path"] for d in sample.differences] == ["body.name"]
    assert lab.comparisons == [("customers", False)]


async def test_redaction_keeps_secrets_out_of_stored_samples(lab: Lab) -> None:
    lab.new.body = lambda r: {"name": "Bob", "card": {"number": "4111-2222"}}
    lab.legacy.body = lambda r: {"name": "Ada", "card": {"number": "4111-1111"}}
    config = route_config(lab.legacy.url, lab.new.url, shadow={"redact": ["body.card.number"]})
    url, mirror, _ = await lab.start(config)
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": "Bearer s3cret-token", "Cookie": "sid=s3cret-cookie"}
        async with session.get(url + "/api/customers/1", headers=headers) as resp:
            assert resp.status == 200
    await drain(mirror)
    (sample,) = (await lab.store.read("customers")).samples
    stored = str(sample.to_dict())
    assert "s3cret-token" not in stored and "s3cret-cookie" not in stored
    assert "4111-1111" not in stored and "4111-2222" not in stored
    assert "<redacted>" in stored
    # The mirrored request itself still carried the header (only storage redacts).
    assert lab.new.seen[0]["headers"]["Authorization"] == "Bearer s3cret-token"


async def test_noise_between_two_legacy_answers_is_flagged_not_a_mismatch(lab: Lab) -> None:
    counter = iter(range(1_000_000))
    lab.legacy.body = lambda r: {"name": "Ada", "request_id": next(counter)}
    lab.new.body = lambda r: {"name": "Ada", "request_id": -1}
    config = route_config(lab.legacy.url, lab.new.url, shadow={"noise_percent": 100})
    url, mirror, _ = await lab.start(config)
    await timed_gets(url, 4)
    await drain(mirror)
    data = await lab.store.read("customers")
    assert "body.request_id" in data.noise
    assert data.counts["match"] == 4 and data.counts["mismatch"] == 0
    assert len(lab.legacy.seen) == 8  # every request also went to legacy a second time


async def test_in_canary_the_side_that_did_not_answer_is_mirrored(lab: Lab) -> None:
    config = route_config(
        lab.legacy.url, lab.new.url, shadow={"percent": 100}, mode="new", percent=None
    )
    url, mirror, _ = await lab.start(config)
    await timed_gets(url, 2)
    await drain(mirror)
    assert len(lab.new.seen) == 2
    assert [s["headers"].get("X-Strangler-Shadow") for s in lab.legacy.seen] == ["1", "1"]
    assert (await lab.store.read("customers")).counts["match"] == 2


async def test_the_route_adapter_shapes_the_mirrored_request_and_the_compared_answer(
    lab: Lab,
) -> None:
    lab.new.body = lambda r: {"id": r.path.rsplit("/", 1)[-1], "fullName": "Ada"}
    lab.legacy.body = lambda r: {"id": r.match_info["tail"].rsplit("/", 1)[-1], "name": "Ada"}
    config = route_config(
        lab.legacy.url, lab.new.url, adapter="tests.shadow.adapters:CustomerAdapter"
    )
    url, mirror, _ = await lab.start(config)
    await timed_gets(url, 2)
    await drain(mirror)
    assert [s["path"] for s in lab.new.seen] == ["/v2/customers/1"] * 2
    data = await lab.store.read("customers")
    assert data.counts["match"] == 2, data.samples
