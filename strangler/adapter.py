"""Anti-corruption adapters on the data plane: the protocol and how config names one.

An adapter translates between the legacy API and the new service's: ``request``
rewrites what is sent to the new upstream; ``response`` turns the new service's
answer back into the shape legacy clients expect (also applied before a shadow
comparison, so like is compared with like). Both are pure and synchronous.

A route's ``adapter:`` is either an import path (``package.module:Name``; a class
is instantiated with no arguments) or the declarative form, built by
:func:`declarative_adapter`::

    adapter:
      path: /v2/customers/{id}          # template filled from the route's {params}
      request:
        rename: {name: full_name, address.zip: address.postcode}
        values: {status: {A: active, I: inactive}}
      response: {}                      # empty: the inverse of ``request``

Declarative semantics, in order:

* ``path`` replaces the request path (the query string is kept); ``{param}``
  names must be captured by the route's pattern, else the request fails (502).
* ``request.values`` maps values of a field named as the *client* sends it,
  then ``request.rename`` renames ``old: new`` (dotted names reach into nested
  objects; a list on the way is walked element by element; a top-level list is
  treated as a list of records).
* ``response.values`` maps values of a field named as the *new service* sends it,
  then ``response.rename`` renames ``new_name: legacy_name``. When ``response``
  gives neither, both are derived from ``request`` by inversion — renames
  reversed and value maps flipped and re-keyed by the renamed field — so a
  request-only config round-trips: what the client sent as ``status: A``
  travels as ``state: active`` and comes back as ``status: A``.

Bodies that are not JSON pass through untouched. Nothing here does I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from strangler.config import DeclarativeAdapterConfig, JsonMapConfig, resolve_import
from strangler.errors import AdapterError
from strangler.message import HttpRequest, HttpResponse


@runtime_checkable
class HttpAdapter(Protocol):
    def request(self, request: HttpRequest) -> HttpRequest:
        """The request to send to the new upstream, from the one the legacy client sent."""
        ...

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """The legacy-shaped response, from the new upstream's answer to ``request``.

        ``request`` is the client's original (legacy) request.
        """
        ...


# ----------------------------------------------------------------- JSON maps

_PARAM = re.compile(r"\{([^{}]*)\}")


def _key(value: Any) -> str:
    """Value-map lookup key: strings as they are, anything else as its JSON text."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class JsonMap:
    """Compiled renames and value maps for one direction. Immutable after build."""

    __slots__ = ("renames", "values")

    def __init__(self, rename: Mapping[str, str], values: Mapping[str, Mapping[str, Any]]) -> None:
        self.renames = tuple((old.split("."), new.split(".")) for old, new in rename.items())
        self.values = tuple(
            (field.split("."), {str(k): v for k, v in table.items()})
            for field, table in values.items()
        )

    @property
    def empty(self) -> bool:
        return not self.renames and not self.values

    def apply(self, data: Any) -> Any:
        for path, table in self.values:
            _visit(data, path, functools.partial(_map_value, table=table))
        for old, new in self.renames:
            _rename(data, old, new)
        return data


def _map_value(obj: dict[str, Any], key: str, table: Mapping[str, Any]) -> None:
    if key in obj:
        lookup = _key(obj[key])
        if lookup in table:
            obj[key] = table[lookup]


def _visit(data: Any, path: list[str], action: Callable[[dict[str, Any], str], None]) -> None:
    """Call ``action(parent, last_key)`` for every object reached by ``path``."""
    if isinstance(data, list):
        for item in data:
            _visit(item, path, action)
        return
    if not isinstance(data, dict):
        return
    if len(path) == 1:
        action(data, path[0])
    elif path[0] in data:
        _visit(data[path[0]], path[1:], action)


def _rename(data: Any, old: list[str], new: list[str]) -> None:
    if len(old) == len(new) and old[:-1] == new[:-1]:
        # The common case: a rename within one object.
        last = new[-1]

        def move(obj: dict[str, Any], key: str) -> None:
            if key in obj:
                obj[last] = obj.pop(key)

        _visit(data, old, move)
        return
    # Moving across objects: take from ``old`` and set at ``new`` (from the root).
    for record in data if isinstance(data, list) else [data]:
        taken: list[Any] = []

        def take(obj: dict[str, Any], key: str, into: list[Any] = taken) -> None:
            if key in obj:
                into.append(obj.pop(key))

        _visit(record, old, take)
        if taken and isinstance(record, dict):
            target = record
            for part in new[:-1]:
                nxt = target.setdefault(part, {})
                if not isinstance(nxt, dict):
                    break
                target = nxt
            else:
                target[new[-1]] = taken[0]


def _inverse(config: JsonMapConfig) -> JsonMapConfig:
    rename = {new: old for old, new in config.rename.items()}
    values: dict[str, dict[str, Any]] = {}
    for field, table in config.values.items():
        renamed = config.rename.get(field, field)
        values[renamed] = {_key(v): k for k, v in table.items()}
    return JsonMapConfig(rename=rename, values=values)


# ------------------------------------------------------------ the adapter


class DeclarativeAdapter:
    """The ``adapter:`` mapping form of routes.yaml (see the module docstring)."""

    def __init__(self, config: DeclarativeAdapterConfig) -> None:
        self.config = config
        self.path = config.path
        if self.path is not None:
            for name in _PARAM.findall(self.path):
                if not name.isidentifier():
                    raise ValueError(f"{self.path!r}: {{{name}}} is not a parameter name")
        self.request_map = JsonMap(config.request.rename, config.request.values)
        response = config.response
        if not response.rename and not response.values:
            response = _inverse(config.request)
        self.response_map = JsonMap(response.rename, response.values)

    def request(self, request: HttpRequest) -> HttpRequest:
        if self.path is not None:
            try:
                path = self.path.format_map(request.params)
            except KeyError as exc:
                raise AdapterError(
                    f"path template {self.path!r} needs {exc.args[0]!r}, "
                    "which the route's pattern does not capture"
                ) from None
            request = request.replace(path=path)
        if not self.request_map.empty:
            data = _json_of(request)
            if data is not _NOT_JSON:
                request = request.with_json(self.request_map.apply(data))
        return request

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if self.response_map.empty:
            return response
        data = _json_of(response)
        if data is _NOT_JSON:
            return response
        return response.with_json(self.response_map.apply(data))


_NOT_JSON: Any = object()


def _json_of(message: HttpRequest | HttpResponse) -> Any:
    """A fresh (mutable) copy of the JSON body, or _NOT_JSON."""
    if not message.body:
        return _NOT_JSON
    try:
        return json.loads(message.body)
    except ValueError:
        return _NOT_JSON


def declarative_adapter(config: DeclarativeAdapterConfig) -> HttpAdapter:
    """Build the declarative form; raises ValueError on a bad path template."""
    return DeclarativeAdapter(config)


def load_adapter(
    spec: str | DeclarativeAdapterConfig | None, base_dir: Path | None = None
) -> HttpAdapter | None:
    """The adapter a route's ``adapter:`` names, or None. Raises ConfigError/ValueError."""
    if spec is None:
        return None
    if isinstance(spec, DeclarativeAdapterConfig):
        return declarative_adapter(spec)
    target: Any = resolve_import(spec, base_dir)
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise ValueError(f"{spec!r} could not be constructed: {exc!r}") from exc
    if not isinstance(target, HttpAdapter):
        raise ValueError(f"{spec!r} is not an adapter (needs request() and response())")
    return target
