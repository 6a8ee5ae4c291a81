"""The contexts panel of the dashboard in a real headless browser, on the sample shop:
owner, state, last cutover, the cutover button (token needed), writes by the non-owner."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, async_playwright

from tests.shadow.test_dashboard import ARTIFACTS, CHROMIUM_ARGS

from .shop import TOKEN, shop

ROW = '#contexts tr[data-context="customers"]'


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _post(url: str) -> str:
    body = {"CUST_NM": "Dash Board", "EMAIL_ADDR": "dash@example.com"}
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        await response.read()
        assert response.status == 201
        return response.headers["X-Strangler-Upstream"]


async def test_the_dashboard_moves_a_context_and_counts_writes_by_the_non_owner(
    browser: Browser, tmp_path: Path
) -> None:
    async with shop(tmp_path) as found:
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})

        async def accept(dialog: Dialog) -> None:
            await dialog.accept()

        page.on("dialog", accept)
        await page.goto(found.admin + "/")
        await page.wait_for_function(
            f"document.querySelector('{ROW} td.owner').textContent === 'legacy'"
        )
        assert "read-only" in await page.inner_text(f"{ROW} td.actions")
        assert await page.inner_text(f"{ROW} td.non-owner") == "0"

        await page.fill("#token-input", TOKEN)
        await page.click("#token-use")
        await page.click(f"{ROW} button.cutover")
        await page.wait_for_function(
            f"document.querySelector('{ROW} td.owner').textContent === 'service'"
        )
        last = await page.inner_text(f"{ROW} td.last")
        assert last.startswith("to service: done, writes held ") and " ms" in last
        assert await _post(found.url + "/api/customers") == "customers"
        await page.wait_for_function(
            "document.querySelector('#audit tbody').textContent.includes('cutover')"
        )

        # Someone writes to the monolith's copy behind the proxy's back: the worker refuses
        # it (written by the non-owner) and the page counts it.
        def sneak() -> None:
            with contextlib.closing(sqlite3.connect(tmp_path / "shop.db", timeout=30)) as db, db:
                db.execute("UPDATE customer SET cust_nm = 'Sneaky' WHERE cust_id = 1")

        await asyncio.to_thread(sneak)
        await page.wait_for_function(
            f"document.querySelector('{ROW} td.non-owner').textContent === '1'", timeout=30000
        )
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-contexts.png"), full_page=True)

        await page.click(f"{ROW} button.cutover")  # and back
        await page.wait_for_function(
            f"document.querySelector('{ROW} td.owner').textContent === 'legacy'"
        )
        assert await _post(found.url + "/api/customers") == "monolith"
