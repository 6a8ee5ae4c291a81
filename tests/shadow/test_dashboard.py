"""The dashboard in a real headless browser (Debian's chromium driven by Playwright),
against the real proxy and admin app with real upstreams on loopback."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from strangler.config import parse_config
from strangler.serve import RunningProxy, bind_listener, start_proxy
from strangler.shadow.mirror import ShadowMirror
from tests.shadow.conftest import Upstream, drain
from tests.support.net import serve_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
TOKEN = "dashboard-test-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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


@pytest.fixture
async def stack() -> AsyncIterator[dict[str, Any]]:
    """Legacy + new upstreams and the proxy as ``strangler serve`` assembles it (admin too)."""
    legacy = Upstream("monolith", body=lambda r: {"id": 7, "name": "Ada", "plan": "gold"})
    new = Upstream("customers", body=lambda r: {"id": 7, "name": "Ada L.", "plan": "gold"})
    async with serve_app(legacy.app()) as legacy_url, serve_app(new.app()) as new_url:
        config = parse_config(
            {
                "listen": "127.0.0.1:0",
                "admin": {"listen": "127.0.0.1:0", "token": TOKEN},
                "legacy": "monolith",
                "upstreams": {"monolith": {"url": legacy_url}, "customers": {"url": new_url}},
                "routes": [
                    {
                        "name": "customers",
                        "match": {"path": "/api/customers/**"},
                        "to": "customers",
                        "mode": "shadow",
                        "shadow": {"percent": 100},
                        "rollback": {"mismatch_rate": 0.5},
                    },
                    {
                        "name": "catalog",
                        "match": {"path": "/api/products/**"},
                        "to": "customers",
                        "mode": "legacy",
                    },
                ],
            }
        )
        running: RunningProxy = await start_proxy(
            config, admin_port=0, proxy_sock=bind_listener("127.0.0.1", 0)
        )
        mirror = getattr(running.runtime.shadow, "mirror", None)  # behind ShadowTaps
        assert isinstance(mirror, ShadowMirror)
        try:
            yield {
                "proxy": running.proxy_url,
                "admin": running.admin_url,
                "mirror": mirror,
                "router": running.router,
            }
        finally:
            await running.close(1.0)


async def get_upstream(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        await resp.read()
        return resp.headers["X-Strangler-Upstream"]


async def cell(page: Page, route: str, name: str) -> str:
    return await page.inner_text(f'#routes tr[data-route="{route}"] td.{name}')


async def test_the_dashboard_follows_traffic_flips_and_highlights_mismatches(
    browser: Browser, stack: dict[str, Any]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await page.goto(stack["admin"] + "/")
    row = '#routes tr[data-route="customers"]'
    await page.wait_for_selector(row)
    assert await cell(page, "customers", "mode") == "shadow"
    assert "read-only" in await cell(page, "customers", "actions")

    # Traffic through the proxy: the route's numbers change on the page by themselves.
    for _ in range(6):
        assert await get_upstream(stack["proxy"] + "/api/customers/7") == "monolith"
    await drain(stack["mirror"])
    await page.wait_for_function(
        "document.querySelector('#routes tr[data-route=\"customers\"] td.rate')"
        ".textContent.trim() === '6'"
    )
    await page.wait_for_function(
        "document.querySelector('#routes tr[data-route=\"customers\"] td.match')"
        ".textContent.includes('of 6')"
    )
    assert await page.locator(f"{row} td.trend svg polyline, {row} td.trend svg circle").count()

    # With the token, flip the route to new: the proxy's answers change.
    await page.fill("#token-input", TOKEN)
    await page.click("#token-use")
    await page.wait_for_selector(f"{row} td.actions select.flip-mode")
    await page.select_option(f"{row} select.flip-mode", "new")
    await page.click(f"{row} button.flip-apply")
    await page.wait_for_function(
        "document.querySelector('#routes tr[data-route=\"customers\"] td.mode')"
        ".textContent === 'new'"
    )
    assert await cell(page, "customers", "source") == "override"
    assert await get_upstream(stack["proxy"] + "/api/customers/7") == "customers"
    await page.wait_for_function(
        "document.querySelector('#audit tbody').textContent.includes('override.set')"
    )
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # The route page: per-field rates and the latest mismatch, differing fields highlighted.
    await page.goto(stack["admin"] + "/routes/customers")
    await page.wait_for_selector('#fields tr[data-field="body.name"]')
    highlighted = page.locator('#samples pre.body span.diff[data-path="body.name"]')
    await highlighted.first.wait_for()
    assert await highlighted.count() >= 2  # both sides of the first sample
    texts = await highlighted.all_inner_texts()
    assert any('"Ada"' in t for t in texts) and any('"Ada L."' in t for t in texts)
    same = page.locator('#samples pre.body span[data-path="body.plan"]')
    assert "diff" not in (await same.first.get_attribute("class") or "")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-route.png"))

    # Reset from the page: back to routes.yaml, and the proxy answers from legacy again.
    await page.click('#routes tr[data-route="customers"] button.flip-reset')
    await page.wait_for_function(
        "document.querySelector('#routes tr[data-route=\"customers\"] td.mode')"
        ".textContent === 'shadow'"
    )
    assert await get_upstream(stack["proxy"] + "/api/customers/7") == "monolith"


async def test_a_wrong_token_changes_nothing_and_says_why(
    browser: Browser, stack: dict[str, Any]
) -> None:
    page = await browser.new_page()
    await page.goto(stack["admin"] + "/")
    await page.fill("#token-input", "not-the-token")
    await page.click("#token-use")
    row = '#routes tr[data-route="catalog"]'
    await page.wait_for_selector(f"{row} select.flip-mode")
    await page.select_option(f"{row} select.flip-mode", "new")
    await page.click(f"{row} button.flip-apply")
    await page.wait_for_selector("#action-error:not([hidden])")
    assert "wrong admin token" in await page.inner_text("#action-error")
    assert await cell(page, "catalog", "mode") == "legacy"
    assert await get_upstream(stack["proxy"] + "/api/products/1") == "monolith"


def keep_screenshot() -> None:
    """Copy the last run's route-page screenshot to docs/ (run by hand, not by pytest)."""
    shutil.copy(ARTIFACTS / "dashboard-route.png", ROOT / "docs" / "dashboard.png")


async def test_a_rejected_reload_is_shown_on_the_dashboard(
    browser: Browser, stack: dict[str, Any]
) -> None:
    page = await browser.new_page()
    await page.goto(stack["admin"] + "/")
    await page.wait_for_selector('#routes tr[data-route="customers"]')
    assert await page.is_hidden("#reload-error")
    stack["router"].reject("routes.yaml: routes[0].percent: 150 is out of range")
    await page.wait_for_selector("#reload-error:not([hidden])")
    assert "150 is out of range" in await page.inner_text("#reload-error")
