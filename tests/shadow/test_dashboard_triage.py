"""The route page's shadow triage in real Chromium, 700 px wide, against the real
proxy shadowing the two twin APIs (whose real bugs must show up on the page)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, Page

from strangler.serve import RunningProxy, bind_listener, start_proxy
from strangler.shadow.mirror import ShadowMirror
from tests.shadow import identity_hook
from tests.shadow.conftest import drain
from tests.shadow.test_dashboard import ARTIFACTS, browser
from tests.shadow.test_twin_apis import CODE_STAGE, STAGES, TOKEN, config, login, traffic
from tests.shadow.twins import legacy_app, new_app
from tests.support.net import serve_app

__all__ = ["browser"]  # the real-Chromium fixture, shared with test_dashboard


@pytest.fixture
async def shadowed() -> AsyncIterator[RunningProxy]:
    async with serve_app(legacy_app()) as legacy, serve_app(new_app()) as new:
        identity_hook.point_at(legacy, new)
        running = await start_proxy(
            config(legacy, new, STAGES[-1][1]),
            admin_port=0,
            proxy_sock=bind_listener("127.0.0.1", 0),
        )
        try:
            async with aiohttp.ClientSession() as session:
                token = await login(session, running.proxy_url, "ada@example.org", "ada-pw")
                for _ in range(3):
                    await traffic(session, running.proxy_url, [token])
            mirror = getattr(running.runtime.shadow, "mirror", None)  # behind ShadowTaps
            assert isinstance(mirror, ShadowMirror)
            await drain(mirror)
            yield running
        finally:
            await running.close(1.0)


async def text(page: Page, selector: str) -> str:
    return await page.inner_text(selector)


async def pager(page: Page, shown: str) -> None:
    """Wait until the samples pager reads ``shown`` (``1-5 of 9``; the page uses an en dash)."""
    await page.wait_for_function(
        "(want) => document.getElementById('samples-page').textContent"
        ".replace('\u2013', '-') === want",
        arg=shown,
    )


async def test_endpoints_signatures_samples_window_reset_at_700px(
    browser: Browser, shadowed: RunningProxy
) -> None:
    assert len(STAGES) > CODE_STAGE
    ARTIFACTS.mkdir(exist_ok=True)
    wide = await browser.new_page(viewport={"width": 1300, "height": 1150})
    await wide.goto(shadowed.admin_url + "/routes/api")
    await wide.wait_for_selector("#signatures tbody tr.pick")
    await wide.screenshot(path=str(ARTIFACTS / "dashboard-shadow.png"))
    await wide.close()
    page = await browser.new_page(viewport={"width": 700, "height": 1000})
    await page.goto(shadowed.admin_url + "/routes/api")
    detail = '#endpoints tr[data-endpoint="GET /api/articles/{id}"]'
    await page.wait_for_selector(detail)
    assert "83.3%" in await text(page, detail)  # one article of six has the real bug
    assert "0.0%" in await text(page, '#endpoints tr[data-endpoint="GET /api/articles"]')
    assert await page.locator("#signatures tbody tr.pick").count() == 2
    assert "favoritesCount" in await text(page, "#signatures")
    assert await page.locator("#trend-chart .rate").count() >= 1
    assert "warning" in await text(page, "#shadow-notes")  # newest-first vs oldest-first

    # Usable at 700 px: nothing makes the page itself scroll sideways.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 700
    await page.screenshot(path=str(ARTIFACTS / "dashboard-shadow-700.png"))

    # 9 mismatches stored (3 rounds x 3), 5 a page: page through them.
    await pager(page, "1-5 of 9")
    await page.click("#samples-next")
    await pager(page, "6-9 of 9")
    assert await page.locator("#samples .sample").count() == 4

    # A signature filters the samples to its own.
    await page.click('#signatures tr.pick:has-text("body.article.favoritesCount")')
    await pager(page, "1-3 of 3")
    assert "signature" in await text(page, "#sample-filter")
    metas = await page.locator("#samples .sample .meta").all_inner_texts()
    assert all("GET /api/articles/{id}" in m for m in metas)
    # The sample shows what the new side received: the API key as a header, redacted.
    assert "X-Api-Key: <redacted>" in await text(page, "#samples .sample .sent >> nth=1")
    await page.click("#filter-clear")
    await pager(page, "1-5 of 9")

    # An endpoint filters too.
    await page.click(detail)
    await page.wait_for_function(
        "document.getElementById('sample-filter').textContent.includes('endpoint')"
    )

    export = await page.get_attribute("#shadow-export", "href")
    assert export is not None and "/shadow/export?window=version" in export

    # Reset needs the token; then the window shows nothing compared.
    assert await page.is_disabled("#shadow-reset")
    await page.fill("#token-input", TOKEN)
    await page.click("#token-use")
    await page.wait_for_selector("#shadow-reset:not([disabled])")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)
    await page.click("#shadow-reset")
    await page.wait_for_function(
        "document.getElementById('shadow-summary').textContent.includes('over 0 compared')"
    )
    await page.select_option("#window", "all")
    await page.wait_for_function(
        "document.getElementById('shadow-summary').textContent.includes('over 0 compared')"
    )
