"""Request-path normalisation: the one path every route is matched against.

``normalize(path)`` returns the canonical form of a request path (no query):
percent-escapes of *unreserved* characters are decoded (``%7E`` -> ``~``,
``%2E`` -> ``.``), other escapes are kept but upper-cased (``%2f`` -> ``%2F``,
so an encoded slash never becomes a segment separator), runs of ``/`` collapse
to one, and ``.`` / ``..`` segments are resolved. A path that would climb above
``/`` or is not a path at all raises :class:`BadPath`; the data plane answers 400
and never forwards it.

Decoding happens before dot-segment removal so ``/a/%2e%2e/b`` cannot slip past
a route as ``/a/../b``. This module never looks at routes or the network.
"""

from __future__ import annotations

import re
from typing import ClassVar

from strangler.errors import StranglerError

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%(..)?", re.DOTALL)
_HEX = frozenset("0123456789abcdefABCDEF")


class BadPath(StranglerError):
    """The request path cannot be normalised (escapes above ``/``, bad escape, not a path)."""

    status: ClassVar[int] = 400


def _decode_unreserved(path: str) -> str:
    def sub(match: re.Match[str]) -> str:
        pair = match.group(1)
        if pair is None or pair[0] not in _HEX or pair[1] not in _HEX:
            raise BadPath(f"{match.group(0)!r} is not a valid percent-escape")
        char = chr(int(pair, 16))
        return char if char in _UNRESERVED else "%" + pair.upper()

    return _ESCAPE.sub(sub, path)


def normalize(path: str) -> str:
    """The canonical form of ``path`` (which must start with ``/``). Raises BadPath."""
    if not path.startswith("/"):
        raise BadPath(f"{path[:60]!r} is not an absolute path")
    # The common case is already canonical; checking three substrings is far cheaper
    # than splitting, and this runs on every request.
    if "%" not in path and "//" not in path and "/." not in path:
        return path
    if "%" in path:
        path = _decode_unreserved(path)
    out: list[str] = []
    segments = path.split("/")
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "..":
            if not out:
                raise BadPath(f"{path[:60]!r} climbs above /")
            out.pop()
        elif segment and segment != ".":
            out.append(segment)
            continue
        if i == last and out:
            # "/a/b/.." and "/a/." name a directory: keep the trailing slash.
            out.append("")
    if segments[-1] == "" and (not out or out[-1] != ""):
        out.append("")
    return "/" + "/".join(out) if out != [""] else "/"


def segments(path: str) -> list[str]:
    """The segments of a normalised path; a trailing slash does not add an empty one."""
    return [s for s in path.split("/") if s]
