"""Automatic rollback through two real proxy processes sharing Redis, seen by API, CLI, metrics."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from .conftest import RedisServer, eventually
from .stack import (
    Site,
    Upstreams,
    admin_call,
    route_info,
    serve_process,
    upstream_of,
    upstreams,
    write_config,
)

ROLLBACK = {"error_rate": 0.2, "window": "60s", "min_requests": 20}


async def _send(session: aiohttp.ClientSession, sites: list[Site], n: int) -> None:
    for i in range(n):
        await upstream_of(session, sites[i % 2])


def _rollbacks(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("strangler_rollbacks_total{")
    )


def _two_replicas(
    tmp_path: Path, ups: Upstreams, redis_up: RedisServer, namespace: str
) -> list[Site]:
    """Two routes.yaml files sharing one Redis namespace, the route in ``new`` under watch."""
    return [
        write_config(
            tmp_path,
            ups,
            state=redis_up.url,
            namespace=namespace,
            name=f"r{i}.yaml",
            mode="new",
            rollback=ROLLBACK,
        )
        for i in (1, 2)
    ]


async def test_a_failing_new_upstream_is_rolled_back_once_across_two_processes(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        sites = _two_replicas(tmp_path, ups, redis_up, namespace)
        async with serve_process(sites[0]), serve_process(sites[1]):
            ups.fail_every["new"] = 1  # the new service starts answering 500
            await _send(session, sites, 40)  # 20 per replica: neither alone decides alone
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "monolith"))
                info = await route_info(session, site)
                assert (info["mode"], info["source"]) == ("legacy", "auto-rollback")
                assert "error rate 100.0% above 20.0%" in info["reason"]
                assert info["override"]["reason"] == info["reason"]

            await asyncio.sleep(1.0)  # a few more monitor rounds on both replicas
            status, audit = await admin_call(session, sites[1], "GET", "/api/audit")
            assert status == 200
            assert [e["action"] for e in audit["entries"]] == ["auto-rollback"]
            metrics = ""
            for site in sites:
                async with session.get(site.admin + "/metrics") as response:
                    metrics += await response.text()
            assert _rollbacks(metrics) == 1
            assert 'strangler_rollbacks_total{reason="error_rate",route="customers"} 1.0' in metrics

            out = await _status(sites[0])
            line = next(x for x in out.splitlines() if x.startswith("customers"))
            assert "legacy" in line and "auto-rollback" in line
            assert "error rate 100.0% above 20.0%" in out

            # It stays rolled back, even once the service is healthy, until a person clears it.
            ups.fail_every["new"] = 0
            await asyncio.sleep(0.6)
            assert await upstream_of(session, sites[0]) == "monolith"
            status, _ = await admin_call(
                session, sites[0], "DELETE", "/api/routes/customers/override"
            )
            assert status == 200
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "customers"))


async def test_errors_below_the_threshold_keep_the_route(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        sites = _two_replicas(tmp_path, ups, redis_up, namespace)
        async with serve_process(sites[0]), serve_process(sites[1]):
            ups.fail_every["new"] = 10  # 10% < 20%
            await _send(session, sites, 80)

            async def counted() -> bool:
                infos = [await route_info(session, site) for site in sites]
                return all(info["traffic"]["requests_per_min"] == 40 for info in infos)

            # Every request counted on both replicas, then several monitor rounds.
            await eventually(counted, timeout=20)
            await asyncio.sleep(1.5)
            infos = [await route_info(session, site) for site in sites]
            for info in infos:
                assert (info["mode"], info["source"]) == ("new", "config")
                assert info["traffic"]["requests_per_min"] == 40
            # 8 of the 80 requests failed, wherever they landed.
            assert round(sum(info["traffic"]["error_rate"] for info in infos) * 40) == 8


async def _answers(session: aiohttp.ClientSession, site: Site, upstream: str) -> bool:
    return await upstream_of(session, site) == upstream


async def _status(site: Site) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strangler",
        "status",
        "--admin",
        site.admin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()
