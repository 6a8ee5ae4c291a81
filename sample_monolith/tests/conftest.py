"""A seeded monolith on loopback for its own API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sample_monolith.app import create_app
from sample_monolith.seed import seed
from tests.support.net import serve_app


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose base URL is a monolith seeded with 60 customers, 150 orders, 30 products."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    seed(url, customers=60, orders=150, products=30, seed=7)
    async with serve_app(create_app(url)) as base, aiohttp.ClientSession(base) as client:
        yield client
