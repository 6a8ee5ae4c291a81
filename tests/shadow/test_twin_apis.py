"""Two independent implementations of one API behind the real proxy, every GET mirrored.

Each rule of ``shadow.compare`` / ``shadow.mirror`` is added in turn (hot-applied,
as a reload does) and must close its part of the gap; at the end every remaining
mismatch is one of the new side's two real bugs, and at least 95% of the
differences that are not real were closed by configuration alone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import aiohttp
import pytest

from strangler.config import Config, parse_config
from strangler.serve import RunningProxy, bind_listener, start_proxy
from strangler.shadow.mirror import ShadowMirror
from tests.shadow import identity_hook
from tests.shadow.conftest import drain
from tests.shadow.twins import LEGACY_KEY, NEW_KEY, SEED_ARTICLES, legacy_app, new_app
from tests.support.net import serve_app

TOKEN = "admin-token-for-tests"

IDENTITY = {"query": {"remove": ["api_key"]}, "headers": {"set": {"X-Api-Key": NEW_KEY}}}
NULLS = {"path": "body.**", "equal": [None, "", "absent"]}
IDS = {"path": "body.**.id", "numeric_strings": True}
STAMPS = {"path": ["body.**.createdAt", "body.**.updatedAt"], "timestamp": {"precision": "ms"}}
ERRORS = {"path": "body", "status": ["4xx"], "ignore": True}
TOKENS = {"path": "body.user.token", "ignore": True}
HOOK = "tests.shadow.identity_hook:LegacyTokenToNew"

# Each stage adds one thing to the one before; (name, shadow block).
STAGES: list[tuple[str, dict[str, Any]]] = [
    ("no rules", {}),
    ("mirror: api key as the new side takes it", {"mirror": IDENTITY}),
    ("null = '' = absent", {"mirror": IDENTITY, "compare": {"rules": [NULLS]}}),
    ("ids: 7 = '7'", {"mirror": IDENTITY, "compare": {"rules": [NULLS, IDS]}}),
    (
        "timestamps as instants (ms)",
        {"mirror": IDENTITY, "compare": {"rules": [NULLS, IDS, STAMPS]}},
    ),
    (
        "articles aligned by slug; order a warning",
        {
            "mirror": IDENTITY,
            "compare": {
                "rules": [NULLS, IDS, STAMPS],
                "match_by": {"body.articles": "slug"},
                "order": "warning",
            },
        },
    ),
    (
        "error bodies (4xx): status only",
        {
            "mirror": IDENTITY,
            "compare": {
                "rules": [NULLS, IDS, STAMPS, ERRORS],
                "match_by": {"body.articles": "slug"},
                "order": "warning",
            },
        },
    ),
    (
        "hook: legacy login -> new session (code)",
        {
            "mirror": {**IDENTITY, "hook": HOOK},
            "compare": {
                "rules": [NULLS, IDS, STAMPS, ERRORS],
                "match_by": {"body.articles": "slug"},
                "order": "warning",
            },
        },
    ),
    (
        "login tokens are per side",
        {
            "mirror": {**IDENTITY, "hook": HOOK},
            "compare": {
                "rules": [NULLS, IDS, STAMPS, ERRORS, TOKENS],
                "match_by": {"body.articles": "slug"},
                "order": "warning",
            },
        },
    ),
]
CODE_STAGE = len(STAGES) - 2
"""The one stage that is code (the hook); every other is configuration."""

REAL = {
    ("body.articles[slug=dragons-4]", "missing"),
    ("body.articles[slug=ghosts-5].favoritesCount", "value"),
    ("body.article.favoritesCount", "value"),
}
"""The new side's real bugs, as the comparison must report them."""


def config(legacy: str, new: str, shadow: dict[str, Any]) -> Config:
    return parse_config(
        {
            "listen": "127.0.0.1:0",
            "admin": {"listen": "127.0.0.1:0", "token": TOKEN},
            "legacy": "monolith",
            "upstreams": {"monolith": {"url": legacy}, "conduit": {"url": new}},
            "routes": [
                {
                    "name": "api",
                    "match": {"path": "/api/**"},
                    "to": "conduit",
                    "mode": "shadow",
                    "shadow": {"max_in_flight": 256, **shadow},
                }
            ],
        }
    )


@pytest.fixture
async def twins() -> AsyncIterator[dict[str, Any]]:
    async with serve_app(legacy_app()) as legacy, serve_app(new_app()) as new:
        identity_hook.point_at(legacy, new)
        running: RunningProxy = await start_proxy(
            config(legacy, new, {}), admin_port=0, proxy_sock=bind_listener("127.0.0.1", 0)
        )
        try:
            yield {"legacy": legacy, "new": new, "running": running}
        finally:
            await running.close(0.5)


def keyed(path: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}api_key={LEGACY_KEY}"


async def login(session: aiohttp.ClientSession, url: str, email: str, password: str) -> str:
    body = {"user": {"email": email, "password": password}}
    async with session.post(f"{url}/api/users/login", json=body) as resp:
        assert resp.status == 200
        return str((await resp.json())["user"]["token"])


async def traffic(session: aiohttp.ClientSession, url: str, tokens: list[str]) -> None:
    gets = [
        "/api/articles?limit=10",
        "/api/articles",
        *[f"/api/articles/{a['slug']}" for a in SEED_ARTICLES],
        "/api/articles/no-such-thing",
        "/api/profiles/ada",
        "/api/profiles/bob",
    ]
    for path in gets:
        async with session.get(url + keyed(path)) as resp:
            await resp.read()
    for token in tokens:
        headers = {"Authorization": f"Token {token}"}
        async with session.get(url + keyed("/api/user"), headers=headers) as resp:
            assert resp.status == 200  # the client is always answered by legacy
            await resp.read()


async def stage(
    running: RunningProxy, session: aiohttp.ClientSession, shadow: dict[str, Any], tokens: list[str]
) -> dict[str, Any]:
    legacy = running.router.config.upstreams["monolith"].url
    new = running.router.config.upstreams["conduit"].url
    running.router.apply_config(config(legacy, new, shadow))
    admin = running.admin_url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with session.post(f"{admin}/api/routes/api/shadow/reset", headers=auth) as resp:
        assert resp.status == 200
    await traffic(session, running.proxy_url, tokens)
    mirror = getattr(running.runtime.shadow, "mirror", None)  # behind ShadowTaps
    assert isinstance(mirror, ShadowMirror)
    await drain(mirror)
    async with session.get(f"{admin}/api/routes/api/shadow?samples=50") as resp:
        assert resp.status == 200
        report = await resp.json()
    differences = [
        (d["path"], d["kind"])
        for s in report["samples"]
        if s["outcome"] == "mismatch"
        for d in s["differences"]
    ]
    return {"report": report, "differences": differences}


async def test_each_rule_closes_its_part_and_only_real_bugs_remain(
    twins: dict[str, Any],
) -> None:
    running: RunningProxy = twins["running"]
    results = []
    async with aiohttp.ClientSession() as session:
        tokens = [
            await login(session, running.proxy_url, "ada@example.org", "ada-pw"),
            await login(session, running.proxy_url, "bob@example.org", "bob-pw"),
        ]
        for name, shadow in STAGES:
            result = await stage(running, session, shadow, tokens)
            results.append((name, result))

    table = [
        (name, r["report"]["match_rate"], len(r["differences"]), r["report"]["compared"])
        for name, r in results
    ]
    print("\n" + "\n".join(f"{n:45} match {m:.0%}  differences {d:4}" for n, m, d, _ in table))
    assert all(compared == 13 for *_, compared in table), table
    counts = [d for _, _, d, _ in table]
    assert table[0][1] == table[1][1] == 0.0  # nothing matches without rules
    # Without the api key the new side answers 401 to everything, which hides the
    # field differences: the gap is measured from the first stage the new side answers.
    gap = counts[1]
    # Every later rule closes part of the gap (none is a no-op on this traffic).
    assert all(b < a for a, b in pairwise(counts[1:])), table

    final = results[-1][1]
    assert set(final["differences"]) == REAL, final["differences"]
    assert final["report"]["counts"]["error"] == 0
    real = len(final["differences"])
    # Closed by configuration alone, out of everything that was not a real bug.
    by_code = counts[CODE_STAGE - 1] - counts[CODE_STAGE]
    share = 1 - by_code / (gap - real)
    print(f"closed without code: {share:.1%} ({gap - real - by_code} of {gap - real})")
    assert share >= 0.95

    report = final["report"]
    assert report["unapplied_rules"] == []  # every rule applied to some difference
    endpoints = {e["endpoint"]: e for e in report["endpoints"]}
    assert endpoints["GET /api/articles/{id}"]["compared"] == len(SEED_ARTICLES)
    assert endpoints["GET /api/articles/{id}"]["match_rate"] == pytest.approx(5 / 6, abs=1e-3)
    assert endpoints["GET /api/articles"]["match_rate"] == 0.0
    assert endpoints["GET /api/user"]["match_rate"] == 1.0
    signatures = {s["signature"]: s for s in report["signatures"]}
    assert set(signatures) == {
        "body.article.favoritesCount",
        "body.articles[*] body.articles[*].favoritesCount",
    }
    assert all(s["example"] for s in signatures.values())
    # Newest-first against oldest-first is an order warning, not a mismatch.
    assert {w["field"] for w in report["warnings"]} == {"body.articles"}
    # One mint per legacy login, whatever the number of requests.
    assert sorted(identity_hook.MINTED) == ["ada@example.org", "bob@example.org"]


async def test_samples_show_what_each_side_received_and_no_secret(twins: dict[str, Any]) -> None:
    running: RunningProxy = twins["running"]
    async with aiohttp.ClientSession() as session:
        token = await login(session, running.proxy_url, "ada@example.org", "ada-pw")
        result = await stage(running, session, STAGES[CODE_STAGE - 1][1], [token])
        export_url = f"{running.admin_url}/api/routes/api/shadow/export"
        async with session.get(export_url) as resp:
            assert resp.status == 200
            exported = await resp.json()
    report = result["report"]
    user = next(s for s in report["samples"] if s["endpoint"] == "GET /api/user")
    sent_new = dict(user["sent"]["new"]["headers"])
    sent_legacy = dict(user["sent"]["legacy"]["headers"])
    assert "api_key=" in user["sent"]["legacy"]["target"]
    assert "api_key" not in user["sent"]["new"]["target"]
    assert sent_new["X-Api-Key"] == "<redacted>" and "X-Api-Key" not in sent_legacy
    assert sent_legacy["Authorization"] == "<redacted>"
    everything = json.dumps(report) + json.dumps(exported)
    for secret in (token, LEGACY_KEY, NEW_KEY, "ada-pw"):
        assert secret not in everything
    assert exported["fixtures"] and {"request", "legacy", "new"} <= set(exported["fixtures"][0])
    case = exported["fixtures"][0]
    assert case["legacy"]["status"] == 200 and isinstance(case["legacy"]["body"], dict)
