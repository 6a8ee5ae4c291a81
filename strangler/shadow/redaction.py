"""Secrets out of everything shadowing stores: samples, differences, exports.

By default any header, query parameter or JSON body key whose name looks like a
secret (``authorization``, ``cookie``, ``token``, ``password``, ``secret``,
``api_key``, ``access_token``, ``x-api-key``, ``x-auth-token`` ...) has its value
replaced by ``<redacted>`` before anything is kept. ``shadow.redact`` adds
paths (``body.**.ssn``, ``header.x-session``, ``query.sig``); ``shadow.reveal``
names what the defaults would hide but may be stored in clear.

Nothing here does I/O; odd input is returned as text, never raised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from strangler.message import Headers
from strangler.shadow.compare import PathPatterns

REDACTED = "<redacted>"
SAMPLE_BODY_LIMIT = 16 * 1024

SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
_SECRET_WORDS = re.compile(
    r"token|passw|secret|apikey|api_key|api-key|authori[sz]ation|cookie|credential|"
    r"private_?key|session|signature|jwt|bearer",
    re.IGNORECASE,
)


def secret_name(name: str) -> bool:
    """A header, parameter or key name that by default holds a secret."""
    return name.lower() in SECRET_HEADERS or _SECRET_WORDS.search(name) is not None


class Redactor:
    """Removes secrets from what is stored: secret-like names, configured paths."""

    def __init__(self, body_paths: Iterable[str] = (), reveal: Iterable[str] = ()) -> None:
        self._paths = PathPatterns(body_paths)
        self._reveal = frozenset(n.lower() for n in reveal)

    def _secret(self, name: str) -> bool:
        return name.lower() not in self._reveal and secret_name(name)

    def headers(self, headers: Headers) -> list[list[str]]:
        return [
            [k, REDACTED if self._secret(k) or self._paths.covers(f"header.{k}") else v]
            for k, v in headers.items()
        ]

    def target(self, target: str) -> str:
        """A request target with secret query parameters' values redacted."""
        path, sep, query = target.partition("?")
        if not sep:
            return target
        pairs = parse_qsl(query, keep_blank_values=True)
        if not any(self._query_secret(k) for k, _ in pairs):
            return target
        clean = [(k, REDACTED if self._query_secret(k) else v) for k, v in pairs]
        return f"{path}?{urlencode(clean, safe='<>')}"

    def _query_secret(self, name: str) -> bool:
        return self._secret(name) or self._paths.covers(f"query.{name}")

    def body(self, body: bytes, content_type: str) -> str:
        if "json" in content_type.lower():
            try:
                data = json.loads(body)
            except ValueError:
                pass
            else:
                text = json.dumps(self.value("body", data), ensure_ascii=False)
                return text[:SAMPLE_BODY_LIMIT] + ("…" if len(text) > SAMPLE_BODY_LIMIT else "")
        if "form-urlencoded" in content_type.lower():
            return self.target("?" + body[:SAMPLE_BODY_LIMIT].decode("utf-8", "replace"))[1:]
        text = body[:SAMPLE_BODY_LIMIT].decode("utf-8", "replace")
        return text + ("…" if len(body) > SAMPLE_BODY_LIMIT else "")

    def covers(self, path: str) -> bool:
        """A difference at ``path`` would show a secret."""
        if path.startswith("header."):
            return self._secret(path[7:]) or self._paths.covers(path)
        if self._paths.covers(path):
            return True
        return any(
            self._secret(part)
            for part in re.split(r"[.\[\]]", path[5:] if path.startswith("body") else path)
            if part and not part.isdigit()
        )

    def value(self, path: str, value: Any) -> Any:
        """A JSON value with every secret inside it redacted."""
        if self._paths and self._paths.covers(path):
            return REDACTED
        if isinstance(value, dict):
            return {
                k: REDACTED if self._secret(k) else self.value(f"{path}.{k}", v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.value(f"{path}[{i}]", v) for i, v in enumerate(value)]
        return value
