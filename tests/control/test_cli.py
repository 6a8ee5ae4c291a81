"""`strangler status` and `strangler flip` as a user runs them, against a running proxy."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from strangler.serve import RunningProxy
from tests.support.net import free_port

from .conftest import RedisServer, compared
from .stack import TOKEN, Site, in_process, route_info, upstream_of, upstreams, write_config


@dataclass
class Result:
    code: int
    out: str
    err: str


async def cli(*args: str, token: str | None = TOKEN, cwd: Path | None = None, **env: str) -> Result:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STRANGLER_")}
    if token is not None:
        environment["STRANGLER_ADMIN_TOKEN"] = token
    environment.update(env)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strangler",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
        cwd=str(cwd) if cwd else None,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


Stack = tuple[Site, RunningProxy, aiohttp.ClientSession]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Stack]:
    async with upstreams() as ups:
        where = write_config(tmp_path, ups, rollback={"mismatch_rate": 0.02})
        async with in_process(where) as running, aiohttp.ClientSession() as session:
            yield where, running, session


async def test_flip_status_and_reset(site: Stack) -> None:
    where, _, session = site
    done = await cli("flip", "customers", "canary", "--percent", "100", "--admin", where.admin)
    assert done.code == 0, done.err
    assert done.out.strip() == "customers: override set; now canary 100% (source: override)"
    assert await upstream_of(session, where) == "customers"

    status = await cli("status", "--admin", where.admin)
    assert status.code == 0, status.err
    header, row = status.out.splitlines()[:2]
    assert header.split() == [
        "ROUTE", "MODE", "PERCENT", "SOURCE", "REQ/MIN", "ERRORS", "FALLBACKS", "MATCH",
    ]  # fmt: skip
    assert row.split() == ["customers", "canary", "100%", "override", "1", "0.0%", "0", "-"]
    assert "state memory:// connected" in status.out

    reset = await cli("flip", "customers", "--reset", "--admin", where.admin)
    assert reset.code == 0, reset.err
    assert "override cleared; now legacy (source: config)" in reset.out
    assert (await route_info(session, where))["source"] == "config"


async def test_admin_url_from_the_environment_and_from_routes_yaml(site: Stack) -> None:
    where = site[0]
    by_env = await cli("flip", "customers", "new", STRANGLER_ADMIN=where.admin)
    assert by_env.code == 0, by_env.err
    by_config = await cli("status", "-c", str(where.config))
    assert by_config.code == 0 and "customers  new" in by_config.out
    in_folder = await cli("status", cwd=where.config.parent)  # ./routes.yaml
    assert in_folder.code == 0 and "override" in in_folder.out


async def test_token_errors(site: Stack) -> None:
    where, _, session = site
    missing = await cli("flip", "customers", "new", "--admin", where.admin, token=None)
    assert missing.code == 1
    assert "missing bearer token" in missing.err and "set STRANGLER_ADMIN_TOKEN" in missing.err
    wrong = await cli("flip", "customers", "new", "--admin", where.admin, token="nope")
    assert wrong.code == 1
    assert "wrong admin token" in wrong.err and "does not match" in wrong.err
    assert (await route_info(session, where))["mode"] == "legacy"


async def test_usage_errors_exit_2(site: Stack) -> None:
    where, running, _ = site
    unknown = await cli("flip", "nope", "new", "--admin", where.admin)
    assert (unknown.code, unknown.err.strip()) == (
        2,
        "strangler flip: no route named 'nope' in routes.yaml",
    )
    for args, message in [
        (["customers", "canary"], "mode canary needs --percent N (0-100)"),
        (["customers", "new", "--percent", "5"], "--percent only applies to mode canary"),
        (["customers", "canary", "--percent", "101"], "--percent 101 is outside 0-100"),
        (["customers", "new", "--reset"], "--reset takes no MODE"),
        (["customers"], "give a MODE"),
    ]:
        result = await cli("flip", *args, "--admin", where.admin)
        assert result.code == 2 and message in result.err, (args, result)
    bad_mode = await cli("flip", "customers", "sideways", "--admin", where.admin)
    assert bad_mode.code == 2 and "invalid choice" in bad_mode.err

    await compared(running, "customers", 1, 1)  # a 50% match rate
    refused = await cli("flip", "customers", "canary", "--percent", "5", "--admin", where.admin)
    assert refused.code == 2 and "--force" in refused.err and "50.0%" in refused.err
    forced = await cli(
        "flip", "customers", "canary", "--percent", "5", "--force", "--admin", where.admin
    )
    assert forced.code == 0, forced.err


async def test_writes_disabled_and_unreachable_exit_1(tmp_path: Path) -> None:
    async with upstreams() as ups:
        where = write_config(tmp_path, ups, token=None)
        async with in_process(where):
            refused = await cli("flip", "customers", "new", "--admin", where.admin)
            assert refused.code == 1 and "writes are disabled" in refused.err
    nobody = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["flip", "customers", "new"], ["flip", "customers", "--reset"]):
        result = await cli(*args, "--admin", nobody)
        assert result.code == 1
        assert f"cannot reach the admin API at {nobody}" in result.err
        assert "refused" in result.err.lower()


async def test_state_store_down_is_503_exit_1(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with upstreams() as ups:
        where = write_config(tmp_path, ups, state=redis_up.url, namespace=namespace)
        async with in_process(where):
            redis_up.stop()
            result = await cli("flip", "customers", "new", "--admin", where.admin)
            assert result.code == 1
            assert (
                "unreachable" in result.err and "retry when the state store is back" in result.err
            )
            status = await cli("status", "--admin", where.admin)
            assert status.code == 0 and "UNREACHABLE" in status.out
