"""Two small, independent implementations of one public API (a blogging API in the
style of the RealWorld "Conduit" spec), seeded with the same data, for shadow tests.

``legacy_app`` is the monolith's, ``new_app`` the rewrite's. They disagree the way
two real implementations of one spec do: field order, integer vs string ids,
microsecond vs millisecond timestamps, ``null`` vs ``""``, oldest-first vs
newest-first lists, an error body of another shape, an API key in the query vs
a header, and login tokens minted by each side. They also have REAL bugs that a
comparison must keep reporting: the new side's listing drops the article
``dragons-4`` from its page, and it counts one favourite too many on
``ghosts-5``.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from aiohttp import web

SEED_USERS = [
    {"id": 1, "username": "ada", "email": "ada@example.org", "password": "ada-pw"},
    {"id": 2, "username": "bob", "email": "bob@example.org", "password": "bob-pw"},
]
SEED_ARTICLES = [
    {
        "id": i,
        "slug": f"{word}-{i}",
        "title": f"How to {word}",
        "body": f"All about {word}.",
        "tags": ["howto", word],
        "author": 1 + i % 2,
        "favorites": i * 3,
        "created": f"2026-11-{i:02d}T10:00:0{i}.{i}23456",
    }
    for i, word in enumerate(["apples", "bees", "cats", "dragons", "ghosts", "hats"], start=1)
]
LEGACY_KEY = "legacy-key-123"
NEW_KEY = "new-key-456"


# ----------------------------------------------------------------------- legacy


def legacy_app() -> web.Application:
    """The monolith: ints, microseconds, nulls, oldest first, ``?api_key=``."""
    tokens: dict[str, int] = {}

    def profile(user_id: int) -> dict[str, Any]:
        user = next(u for u in SEED_USERS if u["id"] == user_id)
        return {"username": user["username"], "bio": None, "image": None, "following": False}

    def article(row: dict[str, Any]) -> dict[str, Any]:
        stamp = row["created"] + "Z"
        return {
            "id": row["id"],
            "slug": row["slug"],
            "title": row["title"],
            "description": None,
            "body": row["body"],
            "tagList": row["tags"],
            "createdAt": stamp,
            "updatedAt": stamp,
            "favorited": False,
            "favoritesCount": row["favorites"],
            "author": profile(row["author"]),
        }

    @web.middleware
    async def api_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/api/users/login" and request.query.get("api_key") != LEGACY_KEY:
            return web.json_response({"errors": {"body": ["bad api key"]}}, status=401)
        return await handler(request)

    async def articles(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "20"))
        rows = sorted(SEED_ARTICLES, key=lambda r: r["created"])[:limit]
        return web.json_response(
            {"articles": [article(r) for r in rows], "articlesCount": len(SEED_ARTICLES)}
        )

    async def one(request: web.Request) -> web.Response:
        row = next((r for r in SEED_ARTICLES if r["slug"] == request.match_info["slug"]), None)
        if row is None:
            return web.json_response({"errors": {"body": ["article not found"]}}, status=404)
        return web.json_response({"article": article(row)})

    async def profiles(request: web.Request) -> web.Response:
        name = request.match_info["username"]
        user = next((u for u in SEED_USERS if u["username"] == name), None)
        if user is None:
            return web.json_response({"errors": {"body": ["profile not found"]}}, status=404)
        return web.json_response({"profile": profile(user["id"])})

    async def login(request: web.Request) -> web.Response:
        given = (await request.json())["user"]
        user = next((u for u in SEED_USERS if u["email"] == given["email"]), None)
        if user is None or user["password"] != given["password"]:
            return web.json_response({"errors": {"body": ["invalid login"]}}, status=422)
        token = "L." + secrets.token_hex(12)
        tokens[token] = user["id"]
        return web.json_response({"user": current(user["id"], token)})

    def current(user_id: int, token: str) -> dict[str, Any]:
        user = next(u for u in SEED_USERS if u["id"] == user_id)
        return {
            "email": user["email"],
            "token": token,
            "username": user["username"],
            "bio": None,
            "image": None,
        }

    async def me(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Token ")
        if token not in tokens:
            return web.json_response({"errors": {"body": ["unauthorized"]}}, status=401)
        return web.json_response({"user": current(tokens[token], token)})

    app = web.Application(middlewares=[api_key])
    app.router.add_get("/api/articles", articles)
    app.router.add_get("/api/articles/{slug}", one)
    app.router.add_get("/api/profiles/{username}", profiles)
    app.router.add_post("/api/users/login", login)
    app.router.add_get("/api/user", me)
    return app


# ----------------------------------------------------------------------- new


class _Store:
    """The rewrite keeps its own copy of the seed, keyed by string ids."""

    def __init__(self) -> None:
        self.users = {str(u["id"]): dict(u) for u in SEED_USERS}
        self.articles = {str(a["id"]): dict(a) for a in SEED_ARTICLES}
        # Real bug 1: a migration script counted one favourite twice.
        self.articles["5"]["favorites"] += 1
        self.sessions: dict[str, str] = {}


def new_app() -> web.Application:
    """The rewrite: strings, milliseconds, empty strings, newest first, ``X-Api-Key``."""
    db = _Store()

    def millis(text: str) -> str:
        return text[:23] + "Z"  # ``...10:00:01.123Z``

    def author(user_id: str) -> dict[str, Any]:
        user = db.users[user_id]
        return {"following": False, "image": "", "bio": "", "username": user["username"]}

    def render(key: str) -> dict[str, Any]:
        row = db.articles[key]
        return {
            "slug": row["slug"],
            "id": key,
            "author": author(str(row["author"])),
            "title": row["title"],
            "body": row["body"],
            "tagList": list(row["tags"]),
            "favoritesCount": row["favorites"],
            "favorited": False,
            "createdAt": millis(row["created"]),
            "updatedAt": millis(row["created"]),
        }

    def problem(status: int, what: str, why: str) -> web.Response:
        return web.json_response({"errors": {what: [why]}}, status=status)

    @web.middleware
    async def keyed(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/internal/"):
            return await handler(request)
        if request.headers.get("X-Api-Key") != NEW_KEY:
            return problem(401, "api_key", "missing or wrong")
        return await handler(request)

    async def listing(request: web.Request) -> web.Response:
        keys = sorted(db.articles, key=lambda k: db.articles[k]["created"], reverse=True)
        # Real bug 2: the page query skips the fourth article.
        page = [render(k) for k in keys if k != "4"][: int(request.query.get("limit", "20"))]
        return web.json_response({"articlesCount": len(db.articles), "articles": page})

    async def detail(request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        for key, row in db.articles.items():
            if row["slug"] == slug:
                return web.json_response({"article": render(key)})
        return problem(404, "article", "not found")

    async def profile(request: web.Request) -> web.Response:
        for key, user in db.users.items():
            if user["username"] == request.match_info["username"]:
                return web.json_response({"profile": author(key)})
        return problem(404, "profile", "not found")

    def session_for(user_key: str) -> str:
        token = "N:" + hashlib.sha256(secrets.token_bytes(16)).hexdigest()[:24]
        db.sessions[token] = user_key
        return token

    def me_body(user_key: str, token: str) -> dict[str, Any]:
        user = db.users[user_key]
        return {
            "user": {
                "username": user["username"],
                "email": user["email"],
                "token": token,
                "image": "",
                "bio": "",
            }
        }

    async def login(request: web.Request) -> web.Response:
        given = (await request.json())["user"]
        for key, user in db.users.items():
            if user["email"] == given["email"] and user["password"] == given["password"]:
                return web.json_response(me_body(key, session_for(key)))
        return problem(422, "credentials", "invalid")

    async def me(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Token ")
        if token not in db.sessions:
            return problem(401, "token", "unknown")
        return web.json_response(me_body(db.sessions[token], token))

    async def impersonate(request: web.Request) -> web.Response:
        """Service-to-service: a session for a user by email (what a shadow hook uses)."""
        email = (await request.json())["email"]
        for key, user in db.users.items():
            if user["email"] == email:
                return web.json_response({"token": session_for(key)})
        return problem(404, "user", "not found")

    app = web.Application(middlewares=[keyed])
    app.router.add_get("/api/articles", listing)
    app.router.add_get("/api/articles/{slug}", detail)
    app.router.add_get("/api/profiles/{username}", profile)
    app.router.add_post("/api/users/login", login)
    app.router.add_get("/api/user", me)
    app.router.add_post("/internal/impersonate", impersonate)
    return app
