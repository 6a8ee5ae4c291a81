"""Identity for mirrored requests: the request as the side it is mirrored to needs it.

A mirrored request carries the client's legacy credential; the new service
does not accept it, so every authenticated comparison would be a mismatch.
:class:`MirrorRewrite` is built once per route from ``shadow.mirror``: the
declarative part (set, remove and rename headers and query parameters) and an
optional hook (``package.module:name``) for what cannot be declared — an async
callable ``(HttpRequest) -> HttpRequest``. Two hook helpers for the common
cases: :class:`CredentialMap` maps the legacy credential to one the new service
accepts, minted once per credential and cached (concurrent requests with one
credential share one mint); :class:`IdMap` maps legacy ids in the path through
a lookup, cached.

A rewrite or hook that fails makes the mirror an ``error`` (the client's answer
was never affected); nothing here is on the client's path.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

from multidict import CIMultiDict, CIMultiDictProxy

from strangler.config import MirrorConfig, RewriteConfig, resolve_import
from strangler.message import HttpRequest

MirrorHook = Callable[[HttpRequest], Awaitable[HttpRequest]]


def load_hook(path: str) -> MirrorHook:
    """The hook named in ``shadow.mirror.hook``; a class is instantiated with no arguments."""
    target = resolve_import(path)
    if inspect.isclass(target):
        target = target()
    if not callable(target):
        raise TypeError(f"{path!r} is not callable")
    return cast(MirrorHook, target)


class MirrorRewrite:
    """``shadow.mirror`` compiled: what the mirrored request becomes."""

    def __init__(self, config: MirrorConfig, hook: MirrorHook | None = None) -> None:
        self.config = config
        self._hook = hook if hook is not None else load_hook(config.hook) if config.hook else None

    async def apply(self, request: HttpRequest) -> HttpRequest:
        request = self.declared(request)
        if self._hook is not None:
            request = await self._hook(request)
        return request

    def declared(self, request: HttpRequest) -> HttpRequest:
        headers_rule, query_rule = self.config.headers, self.config.query
        changes: dict[str, Any] = {}
        if _any(headers_rule):
            headers = CIMultiDict(request.headers)
            for old, new in headers_rule.rename.items():
                values = headers.popall(old, [])
                for value in values:
                    headers.add(new, value)
            for name in headers_rule.remove:
                headers.popall(name, None)
            for name, value in headers_rule.set.items():
                headers[name] = value
            changes["headers"] = CIMultiDictProxy(headers)
        if _any(query_rule):
            pairs = parse_qsl(request.query, keep_blank_values=True)
            renamed = [(query_rule.rename.get(k, k), v) for k, v in pairs]
            kept = [(k, v) for k, v in renamed if k not in query_rule.remove]
            kept = [(k, v) for k, v in kept if k not in query_rule.set]
            kept += list(query_rule.set.items())
            changes["query"] = urlencode(kept)
        return request.replace(**changes) if changes else request


def _any(rule: RewriteConfig) -> bool:
    return bool(rule.set or rule.remove or rule.rename)


Mint = Callable[[str], Awaitable[str | None]]
"""Legacy credential (the header's value) -> the new side's value, or None: drop it."""


class CredentialMap:
    """A hook: the ``header`` value mapped through ``mint``, cached for ``ttl`` seconds.

    ``CredentialMap(mint)`` where ``mint("Token abc")`` logs the same user in at the
    new service and returns ``"Token xyz"``. At most ``max_entries`` are kept."""

    def __init__(
        self,
        mint: Mint,
        header: str = "Authorization",
        ttl: float = 300.0,
        max_entries: int = 10_000,
    ) -> None:
        self._mint = mint
        self._header = header
        self._ttl = ttl
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, asyncio.Future[str | None]]] = OrderedDict()

    async def __call__(self, request: HttpRequest) -> HttpRequest:
        legacy = request.headers.get(self._header)
        if legacy is None:
            return request
        mapped = await self.mapped(legacy)
        return request.with_headers(**{self._header: mapped})

    async def mapped(self, legacy: str) -> str | None:
        now = time.monotonic()
        entry = self._cache.get(legacy)
        if (
            entry is not None
            and now - entry[0] < self._ttl
            and (not entry[1].done() or entry[1].exception() is None)
        ):
            self._cache.move_to_end(legacy)
            return await asyncio.shield(entry[1])
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._cache[legacy] = (now, future)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        try:
            value = await self._mint(legacy)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failed mint is retried by the next request
            raise
        future.set_result(value)
        return value


Lookup = Callable[[str], Awaitable[str | None]]
"""A legacy id -> the new side's id for the same thing, or None: leave it."""


class IdMap:
    """A hook: path segments that look like legacy ids (``pattern``) mapped through
    ``lookup`` (e.g. a query of the new service by legacy id), cached.

    ``/api/orders/1042/items`` -> ``/api/orders/5f0c…/items``. At most
    ``max_entries`` ids are kept; a failed lookup is not cached."""

    def __init__(self, lookup: Lookup, pattern: str = r"\d+", max_entries: int = 100_000) -> None:
        self._lookup = lookup
        self._pattern = re.compile(pattern)
        self._max = max_entries
        self._cache: OrderedDict[str, str | None] = OrderedDict()

    async def __call__(self, request: HttpRequest) -> HttpRequest:
        parts = request.path.split("/")
        changed = False
        for i, part in enumerate(parts):
            if part and self._pattern.fullmatch(part):
                mapped = await self.mapped(part)
                if mapped is not None and mapped != part:
                    parts[i] = mapped
                    changed = True
        return request.replace(path="/".join(parts)) if changed else request

    async def mapped(self, legacy: str) -> str | None:
        if legacy in self._cache:
            self._cache.move_to_end(legacy)
            return self._cache[legacy]
        value = await self._lookup(legacy)
        self._cache[legacy] = value
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return value
