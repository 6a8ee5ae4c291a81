"""Real HTTP traffic through the proxy from a pool of sticky users, and what it saw.

Each simulated user always sends the same ``X-User-Id`` (the route's sticky key),
so a canary must keep answering them from the same side. Every reply is kept
(user, path, status, which upstream answered per ``X-Strangler-Upstream``, body)
so the steps can measure shares, stickiness and errors from what clients
actually received. The driver never looks inside the proxy.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from strangler.errors import UpstreamConnectError

USER_HEADER = "X-User-Id"


@dataclass(frozen=True)
class Reply:
    user: str
    method: str
    path: str
    status: int
    upstream: str
    """``X-Strangler-Upstream`` of the answer, ``!`` if the request itself failed."""
    route: str
    body: bytes


@dataclass
class Sample:
    """Every reply of one burst of traffic, with the measures the steps need."""

    replies: list[Reply] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.replies)

    @property
    def errors(self) -> list[Reply]:
        """Replies a client would call broken: transport failures and 5xx."""
        return [r for r in self.replies if r.upstream == "!" or r.status >= 500]

    def by_upstream(self) -> Counter[str]:
        return Counter(r.upstream for r in self.replies)

    def share(self, upstream: str) -> float:
        """Fraction of requests answered by ``upstream`` (0..1)."""
        return self.by_upstream()[upstream] / len(self.replies) if self.replies else 0.0

    def sides(self) -> dict[str, set[str]]:
        """For each user, the set of upstreams that answered them."""
        seen: dict[str, set[str]] = {}
        for reply in self.replies:
            seen.setdefault(reply.user, set()).add(reply.upstream)
        return seen

    def users_on(self, upstream: str) -> set[str]:
        """Users answered by ``upstream`` at least once (a canary user whose request
        failed on the new side was answered by legacy as a fallback, still a canary user)."""
        return {user for user, sides in self.sides().items() if upstream in sides}

    def non_sticky_users(self) -> set[str]:
        return {user for user, sides in self.sides().items() if len(sides) > 1}


def users(count: int, prefix: str = "user") -> list[str]:
    """Stable user ids: the same demo always draws the same canary cohort."""
    return [f"{prefix}-{i:04d}" for i in range(1, count + 1)]


PathPicker = Callable[[random.Random], str]


class Traffic:
    """Drives GETs (and the odd write) through the proxy with bounded concurrency."""

    def __init__(self, base_url: str, *, concurrency: int = 16, seed: int = 7) -> None:
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self._random = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Traffic:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=15)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use Traffic as 'async with Traffic(url) as traffic'")
        return self._session

    async def send(self, user: str, method: str, path: str, json: object | None = None) -> Reply:
        """One request through the proxy as ``user``; failures become a ``!`` reply."""
        return await self.send_to(self.base_url, method, path, json=json, user=user)

    async def send_to(
        self,
        base_url: str,
        method: str,
        path: str,
        json: object | None = None,
        user: str = "direct",
    ) -> Reply:
        """One request to any base URL (e.g. straight to the monolith, bypassing the proxy)."""
        headers = {USER_HEADER: user}
        try:
            async with self.session.request(
                method, base_url + path, headers=headers, json=json
            ) as response:
                body = await response.read()
                return Reply(
                    user=user,
                    method=method,
                    path=path,
                    status=response.status,
                    upstream=response.headers.get("X-Strangler-Upstream", "?"),
                    route=response.headers.get("X-Strangler-Route", "?"),
                    body=body,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Reply(user, method, path, 0, "!", "?", str(exc).encode())

    async def burst(self, pool: Sequence[str], pick: PathPicker, per_user: int = 1) -> Sample:
        """Every user in ``pool`` sends ``per_user`` GETs to paths from ``pick``."""
        jobs = [(user, pick(self._random)) for _ in range(per_user) for user in pool]
        sample = Sample()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                user, path = queue.get_nowait()
                sample.replies.append(await self.send(user, "GET", path))

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return sample

    async def get_json(self, path: str, user: str = "probe") -> tuple[Reply, object]:
        """One GET whose JSON body the caller needs; raises if the proxy is unreachable."""
        reply = await self.send(user, "GET", path)
        if reply.upstream == "!":
            raise UpstreamConnectError("proxy", reply.body.decode(errors="replace"))
        return reply, jsonlib.loads(reply.body) if reply.body else None


async def steady(
    traffic: Traffic, pool: Sequence[str], pick: PathPicker, per_second: float
) -> None:
    """Keep a trickle of GETs flowing (until cancelled) so the dashboard has live numbers."""
    rng = random.Random(11)
    while True:
        user = rng.choice(pool)
        await traffic.send(user, "GET", pick(rng))
        await asyncio.sleep(1.0 / per_second)
