"""`strangler cutover` and `strangler status` as a user runs them, against a running proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.control.test_cli import cli

from .stack import TOKEN, context_view, in_process, sides, write, write_config


async def test_cutover_prints_the_hold_and_status_shows_the_owner(tmp_path: Path) -> None:
    async with sides() as found, aiohttp.ClientSession() as session:
        site = write_config(tmp_path, found)
        async with in_process(site):
            done = await cli(
                "cutover", "customers", "--to", "service", "--admin", site.admin, token=TOKEN
            )
            assert done.code == 0, done.err
            assert done.out.startswith("customers: writes and data now owned by service (epoch 1)")
            assert "writes held " in done.out and " ms" in done.out
            assert await write(session, site, "w1") == (200, "customers")

            status = await cli("status", "--admin", site.admin)
            assert status.code == 0, status.err
            assert "context customers: writes and data owned by service (epoch 1)" in status.out
            assert "last cutover to service done" in status.out

            again = await cli(
                "cutover", "customers", "--to", "service", "--admin", site.admin, token=TOKEN
            )
            assert again.code == 1 and "already owned by service" in again.err

            unknown = await cli(
                "cutover", "orders", "--to", "legacy", "--admin", site.admin, token=TOKEN
            )
            assert unknown.code == 2 and "no context named 'orders'" in unknown.err

            no_token = await cli(
                "cutover", "customers", "--to", "legacy", "--admin", site.admin, token=None
            )
            assert no_token.code == 1 and "STRANGLER_ADMIN_TOKEN" in no_token.err
            assert (await context_view(session, site))["owner"] == "service"


async def test_an_aborted_cutover_exits_1_and_leaves_everything_with_the_old_owner(
    tmp_path: Path,
) -> None:
    async with sides() as found, aiohttp.ClientSession() as session:
        site = write_config(tmp_path, found, context={"hold_timeout": "200ms"})
        async with in_process(site):
            found.delay["legacy"] = 1.5
            slow = asyncio.create_task(write(session, site, "slow"))
            while not found.events:
                await asyncio.sleep(0.005)
            result = await cli(
                "cutover", "customers", "--to", "service", "--admin", site.admin, token=TOKEN
            )
            assert result.code == 1, result.out
            assert "cutover to service ABORTED after holding writes" in result.err
            assert "everything stayed with legacy" in result.err
            assert await slow == (200, "monolith")
            assert (await context_view(session, site))["owner"] == "legacy"
