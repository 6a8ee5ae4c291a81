"""The code part of identity for the twin APIs (``shadow.mirror.hook``): the legacy
login token -> a session of the same user at the new service, minted once per token.

What a team writes for its own services; the tests point it at their upstreams
with :func:`point_at` before the proxy starts (nothing is read at import time)."""

from __future__ import annotations

import aiohttp

from strangler.shadow.identity import CredentialMap
from tests.shadow.twins import LEGACY_KEY

WHERE: dict[str, str] = {}
MINTED: list[str] = []


def point_at(legacy_url: str, new_url: str) -> None:
    WHERE.update(legacy=legacy_url, new=new_url)
    MINTED.clear()


async def mint(legacy_credential: str) -> str | None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{WHERE['legacy']}/api/user?api_key={LEGACY_KEY}",
            headers={"Authorization": legacy_credential},
        ) as resp:
            if resp.status != 200:
                return None
            email = (await resp.json())["user"]["email"]
        async with session.post(f"{WHERE['new']}/internal/impersonate", json={"email": email}) as r:
            token = (await r.json())["token"]
    MINTED.append(email)
    return f"Token {token}"


class LegacyTokenToNew(CredentialMap):
    def __init__(self) -> None:
        super().__init__(mint)
