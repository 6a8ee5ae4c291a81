"""routes.yaml problems: validation errors mapped to the file, checks that span
keys, and the hints that go with them.

``schema_problems`` turns pydantic's errors into problems keyed by their path in
the file (pydantic's union-branch labels dropped).

``cross_check(data)`` runs on the parsed YAML itself, not on the validated model,
so it reports a route naming a missing upstream even when another key of the file
failed validation: ``strangler check`` lists every problem in one pass. Each check
looks only at the values it needs and skips any that are not the right shape
(validation reports those). ``unknown_key_hint`` and ``reference_hint`` say what
was probably meant. ``tls:`` sections (the listener's, each upstream's) must name PEM
files that exist and load. Nothing here imports the main config module.
"""

from __future__ import annotations

import collections.abc
import difflib
import re
import ssl
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from strangler.errors import Problem
from strangler.yaml_source import parse_key

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MODES = ("legacy", "shadow", "canary", "new")

ImportCheck = Callable[[str, Path | None], str | None]


def reference_hint(value: object, valid: Iterable[str], kind: str) -> str:
    """``did you mean 'customers'? upstreams: monolith, customers`` (or just the list)."""
    names = list(valid)
    listed = f"{kind}: {', '.join(names)}" if names else f"no {kind} are defined"
    close = difflib.get_close_matches(str(value), names, n=1)
    return f"did you mean {close[0]!r}? {listed}" if close else listed


def unknown_key_hint(root: type[BaseModel], path: tuple[str | int, ...]) -> str | None:
    """``did you mean 'percent'?`` for an unknown key at ``path``, from the model's fields."""
    options: list[Any] = [root]
    for part in path[:-1]:
        options = [t for option in options for t in _step(option, part)]
    fields = [
        name
        for option in options
        for model in _unwrap(option)
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name in model.model_fields
    ]
    close = difflib.get_close_matches(str(path[-1]), fields, n=1) if path else []
    return f"did you mean {close[0]!r}?" if close else None


def _unwrap(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    return [annotation]


def _step(annotation: Any, part: str | int) -> list[Any]:
    out: list[Any] = []
    for option in _unwrap(annotation):
        origin, args = get_origin(option), get_args(option)
        if isinstance(option, type) and issubclass(option, BaseModel):
            field = option.model_fields.get(str(part))
            if field is not None:
                out.append(field.annotation)
        elif isinstance(part, int) and origin in (tuple, list, collections.abc.Sequence):
            out.extend(args[:1])
        elif isinstance(part, str) and origin in (dict, Mapping, collections.abc.Mapping):
            out.extend(args[1:2])
    return out


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def cross_check(
    data: Mapping[str, Any], base_dir: Path | None, imports: ImportCheck
) -> list[Problem]:
    """Every reference between keys of the parsed file, whether or not the rest validated."""
    problems: list[Problem] = []
    upstreams = data.get("upstreams")
    known = list(upstreams) if isinstance(upstreams, Mapping) else None

    def refer(key: str, value: Any) -> None:
        if known is not None and isinstance(value, str) and value not in known:
            hint = reference_hint(value, known, "upstreams")
            problems.append(Problem(key, f"{value!r} is not one of upstreams", hint=hint))

    refer("legacy", data.get("legacy"))
    names: dict[str, int] = {}
    for i, route in enumerate(_list(data.get("routes"))):
        if not isinstance(route, Mapping):
            continue
        key, name = f"routes[{i}]", route.get("name")
        if isinstance(name, str) and name in names:
            message = f"{name!r} is already used by routes[{names[name]}]"
            problems.append(Problem(f"{key}.name", message, hint="route names must be unique"))
        if isinstance(name, str):
            names.setdefault(name, i)
        refer(f"{key}.to", route.get("to"))
        problems += _percent(key, route)
        adapter = route.get("adapter")
        if isinstance(adapter, str) and re.fullmatch(r"[\w.]+:[\w.]+", adapter):
            problem = imports(adapter, base_dir)
            if problem:
                problems.append(Problem(f"{key}.adapter", problem))
    sync = _dict(data.get("sync"))
    sources: list[str] = []
    for i, table in enumerate(_list(sync.get("tables"))):
        table = _dict(table)
        if isinstance(table.get("source"), str):
            sources.append(table["source"])
        adapter = table.get("adapter")
        if isinstance(adapter, str) and re.fullmatch(r"[\w.]+:[\w.]+", adapter):
            problem = imports(adapter, base_dir)
            if problem:
                problems.append(Problem(f"sync.tables[{i}].adapter", problem))
    problems += _contexts(_dict(data.get("contexts")), list(names), sources)
    for name, upstream in _dict(upstreams).items():
        problems += _tls_files(f"upstreams.{name}.tls", _dict(_dict(upstream).get("tls")), base_dir)
    problems += _tls_files("tls", _dict(data.get("tls")), base_dir)
    return problems


def _tls_files(key: str, tls: Mapping[str, Any], base_dir: Path | None) -> list[Problem]:
    """The PEM files of a ``tls:`` section exist and load (a CA bundle, a certificate
    with its key), so a wrong path fails ``check`` and the start, not the first request."""
    paths = {k: v for k in ("ca", "cert", "key") if isinstance(v := tls.get(k), str)}
    full = {k: (base_dir or Path.cwd()) / v for k, v in paths.items()}
    problems = [
        Problem(f"{key}.{k}", f"{paths[k]!r}: {why}")
        for k, path in full.items()
        if (why := _unreadable(path)) is not None
    ]
    missing = {p.key.rpartition(".")[2] for p in problems}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "ca" in full and "ca" not in missing:
        try:
            context.load_verify_locations(cafile=full["ca"])
        except ssl.SSLError as exc:
            problems.append(
                Problem(f"{key}.ca", f"{paths['ca']!r}: not a PEM CA bundle ({exc.reason})")
            )
    if "cert" in full and not missing & {"cert", "key"}:
        try:
            context.load_cert_chain(full["cert"], full.get("key"))
        except ssl.SSLError as exc:
            what = "does not load" + (f" with the key {paths['key']!r}" if "key" in paths else "")
            problems.append(Problem(f"{key}.cert", f"{paths['cert']!r}: {what} ({exc.reason})"))
    return problems


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"


def _percent(key: str, route: Mapping[str, Any]) -> list[Problem]:
    mode, percent = route.get("mode", "legacy"), route.get("percent")
    if mode == "canary" and percent is None:
        return [Problem(f"{key}.percent", "is required with mode canary")]
    if mode in _MODES and mode != "canary" and percent is not None:
        shown = f"{percent:g}" if isinstance(percent, int | float) else repr(percent)
        return [
            Problem(
                f"{key}.percent",
                f"{shown} is only meaningful with mode canary",
                hint="remove it, or set mode: canary",
            )
        ]
    return []


def _contexts(contexts: Mapping[str, Any], routes: list[str], sources: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    owner_of: dict[str, str] = {}
    for name, context in contexts.items():
        key = f"contexts.{name}"
        if not _NAME.fullmatch(str(name)):
            problems.append(Problem(key, f"{name!r} may only use letters, digits, '_', '.', '-'"))
        context = _dict(context)
        for route in _list(context.get("routes")):
            if not isinstance(route, str):
                continue
            if route not in routes:
                hint = reference_hint(route, routes, "routes")
                problems.append(
                    Problem(f"{key}.routes", f"{route!r} is not one of routes", hint=hint)
                )
            elif route in owner_of:
                problems.append(
                    Problem(
                        f"{key}.routes",
                        f"{route!r} already belongs to context {owner_of[route]!r} "
                        "(a route is in at most one context)",
                    )
                )
            else:
                owner_of[route] = name
        for table in _list(context.get("tables")):
            if isinstance(table, str) and table not in sources:
                hint = reference_hint(table, sources, "sync.tables[].source entries")
                problems.append(
                    Problem(
                        f"{key}.tables",
                        f"{table!r} is not a sync.tables[].source entry",
                        hint=hint,
                    )
                )
    return problems


_LABEL = re.compile(r"[A-Z]\w*|\w+\[.*\]|str|int|float|bool|list|dict|tuple|none")


def _walk(loc: tuple[int | str, ...], data: Any, missing: bool) -> tuple[int | str, ...]:
    """The error location as a path into the data: pydantic's union-branch labels
    (``str``, ``DeclarativeAdapterConfig``, ...) are not keys of the file, so they go."""
    path: list[int | str] = []
    for n, part in enumerate(loc):
        last = n == len(loc) - 1
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_list or (isinstance(data, dict) and part in data):
            data = data[part]
        elif isinstance(part, str) and _LABEL.fullmatch(part) and not (last and missing):
            continue
        else:
            data = None  # a key the file does not have, or a value a validator reshaped
        path.append(part)
    return tuple(path)


def _key_path(path: tuple[int | str, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: Mapping[str, Any]) -> str:
    value = error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    bounds = {
        "greater_than_equal": ("ge", "less than"),
        "greater_than": ("gt", "not more than"),
        "less_than_equal": ("le", "more than"),
        "less_than": ("lt", "not less than"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        limit = error.get("ctx", {}).get(key)
        shown = f"{limit:g}" if isinstance(limit, int | float) else str(limit)
        return f"{value!r} is out of range: {words} {shown}"
    if repr(value) in message or isinstance(value, dict | list):
        return message
    return f"{value!r}: {message}"


_RELATIVE = re.compile(r"(\w+(?:\.[\w-]+|\[\d+\])*): (.+)", re.DOTALL)
_NOT_ONE_OF = re.compile(r"'([^']*)' is not one of (\w+)")


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_list or (isinstance(data, Mapping) and part in data)):
            return None
        data = data[part]
    return data


def _relative(
    path: tuple[str | int, ...], message: str, data: Any
) -> tuple[tuple[str | int, ...], str]:
    """A section-level check says which of its keys is wrong (``tables[0].target: ...``):
    key the problem there, so its line is that key's line."""
    match = _RELATIVE.fullmatch(message)
    if match is None:
        return path, message
    # the longest prefix of the named path that the file has
    deeper = parse_key(match.group(1))
    if not deeper or _at(data, (*path, deeper[0])) is None:
        return path, message
    return (*path, *deeper), match.group(2)


def _names_hint(path: tuple[str | int, ...], message: str, data: Any) -> str | None:
    """For ``'x' is not one of targets``: the valid names, from the nearest ``targets``."""
    match = _NOT_ONE_OF.search(message)
    if match is None:
        return None
    value, kind = match.groups()
    for end in range(len(path), -1, -1):
        found = _at(data, (*path[:end], kind))
        if isinstance(found, Mapping):
            return reference_hint(value, [str(k) for k in found], kind)
        if isinstance(found, list):
            names = [str(i["name"]) for i in found if isinstance(i, Mapping) and "name" in i]
            return reference_hint(value, names, kind)
    return None


def schema_problems(exc: ValidationError, data: Any, root: type[BaseModel]) -> list[Problem]:
    """One problem per distinct pydantic error, keyed by its path in the file."""
    seen: set[tuple[str, str]] = set()
    problems = []
    for error in exc.errors():
        path = _walk(tuple(error["loc"]), data, error.get("type") == "missing")
        message = _describe(error)
        path, message = _relative(path, message, data)
        hint = unknown_key_hint(root, path) if error.get("type") == "extra_forbidden" else None
        problem = Problem(_key_path(path), message, hint=hint or _names_hint(path, message, data))
        if (problem.key, problem.message) not in seen:
            seen.add((problem.key, problem.message))
            problems.append(problem)
    # A mapping given for a union (``adapter: {...}`` is str | mapping) fails the scalar
    # branches too; once the mapping branch says what is wrong inside, those are noise.
    inner = {p.key for p in problems}
    return [
        p
        for p in problems
        if not (
            p.message.startswith("Input should be a valid")
            and any(k.startswith((p.key + ".", p.key + "[")) for k in inner)
        )
    ]
