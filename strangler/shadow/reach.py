"""Which comparison rules never applied, and how they might have been meant.

``strangler check`` validates a path's syntax but cannot know the data:
``body.articles.createdAt`` parses, and names nothing when ``articles`` is a
list. The comparator notes the rules that applied to a difference (the store
keeps them per rules version); :func:`unapplied` lists the configured body
paths that never did, each with the spelling that would reach something in the
stored samples (``body.articles[*].createdAt``) when there is one. Run while a
report is built, off the request path; nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from strangler.config import CompareConfig
from strangler.fieldpath import ANY_DEPTH, ANY_ITEM, ANY_KEY, parse


def body_paths(config: CompareConfig) -> list[str]:
    """Every body path the config names (ignore, unordered, match_by, rules)."""
    paths = [*config.ignore, *config.unordered, *config.match_by]
    for rule in config.rules:
        paths += list(rule.path)
    return [p for p in dict.fromkeys(paths) if p.startswith("body") and p != "body"]


def unapplied(
    paths: Iterable[str], applied: Collection[str], bodies: Iterable[str]
) -> list[dict[str, Any]]:
    """``[{"path", "suggest"}]`` for the paths that never applied to a difference."""
    documents = _documents(bodies)
    out = []
    for path in paths:
        if path in applied:
            continue
        segments = parse(path).segments
        suggestion = next(
            (s for doc in documents if (s := _suggest(segments, doc, "body")) is not None), None
        )
        out.append({"path": path, "suggest": suggestion if suggestion != path else None})
    return out


def _documents(bodies: Iterable[str]) -> list[Any]:
    documents = []
    for text in bodies:
        try:
            documents.append(json.loads(text))
        except (TypeError, ValueError):
            continue
    return documents


def _suggest(segments: tuple[str, ...], value: Any, built: str) -> str | None:
    """The path with ``[*]`` added where the data has a list the path steps over."""
    if not segments:
        return built
    head, rest = segments[0], segments[1:]
    if head == ANY_DEPTH:
        return None  # ** already reaches through lists
    if isinstance(value, list) and not head.startswith("["):
        items = [v for v in value if isinstance(v, dict | list)]
        return _suggest(segments, items[0], built + ANY_ITEM) if items else None
    if isinstance(value, dict):
        if head == ANY_KEY:
            for v in value.values():
                found = _suggest(rest, v, f"{built}.*")
                if found is not None:
                    return found
            return None
        if head in value:
            return _suggest(rest, value[head], f"{built}.{head}")
        return None
    if isinstance(value, list) and head == ANY_ITEM and value:
        return _suggest(rest, value[0], built + ANY_ITEM)
    return None
