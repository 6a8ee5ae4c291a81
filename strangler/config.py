"""routes.yaml (version 1) as immutable, validated values.

``load_config(path)`` reads the file, expands ``${VAR}`` from the environment in
values (:mod:`strangler.yaml_source`), validates every key and cross-checks the
whole (:mod:`strangler.config_checks`); on failure it raises one
:class:`~strangler.errors.ConfigError` listing every problem as ``key.path: what
is wrong`` with the offending value named, its line in the file and a hint. It
never reads the environment at import time and never touches the network.

Matching-specific checks (path syntax, ambiguous routes) belong to the route
table (``strangler.routing``), which ``strangler check`` builds too.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from strangler.config_checks import cross_check, schema_problems
from strangler.errors import ConfigError, Problem
from strangler.schema import Listen, Name
from strangler.schema import Section as _Model
from strangler.shadow_config import (
    DEFAULT_SHADOW,
    HTTP_METHODS,
    CompareConfig,
    CompareRule,
    MirrorConfig,
    ReplaceRule,
    RewriteConfig,
    ShadowConfig,
    TimestampRule,
    methods,
)
from strangler.sync_config import SyncConfig
from strangler.tls_config import TlsConfig, UpstreamTlsConfig
from strangler.units import Duration, Size
from strangler.yaml_source import Source, interpolate, read_yaml

Mode = Literal["legacy", "shadow", "canary", "new"]
MODES: tuple[Mode, ...] = ("legacy", "shadow", "canary", "new")
__all__ = [
    "DEFAULT_SHADOW",
    "HTTP_METHODS",
    "CompareConfig",
    "CompareRule",
    "MirrorConfig",
    "ReplaceRule",
    "RewriteConfig",
    "ShadowConfig",
    "TimestampRule",
    "interpolate",
]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8081"`` -> ``("127.0.0.1", 8081)``; ``[::1]:80`` keeps the brackets off."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class CircuitConfig(_Model):
    """Per-upstream breaker: ``failures`` in a row open it for ``cooldown``, then one probe."""

    failures: int = Field(5, ge=1)
    cooldown: Duration = 5.0


class UpstreamConfig(_Model):
    url: str
    timeout: Duration = 10.0
    connect_timeout: Duration = 2.0
    host: Literal["upstream", "client"] = "upstream"
    max_connections: int = Field(256, ge=1)
    retries: int = Field(1, ge=0, le=5)
    circuit: CircuitConfig = CircuitConfig()
    tls: UpstreamTlsConfig | None = None
    """Only with an ``https://`` url (which is TLS with the system's CAs without it)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/.*)?$", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _tls_needs_https(self) -> UpstreamConfig:
        if self.tls is not None and not self.url.startswith("https://"):
            raise ValueError(f"tls: is only for an https:// url, not {self.url!r}")
        return self


class MatchConfig(_Model):
    path: str
    methods: tuple[str, ...] | None = None
    headers: Mapping[str, str] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with /")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return methods(value)


class RollbackConfig(_Model):
    error_rate: float | None = Field(None, ge=0, le=1)
    mismatch_rate: float | None = Field(None, ge=0, le=1)
    window: Duration = 60.0
    min_requests: int = Field(50, ge=1)


class JsonMapConfig(_Model):
    """Declarative JSON reshaping: field renames and per-field value maps."""

    rename: Mapping[str, str] = {}
    values: Mapping[str, Mapping[str, Any]] = {}


class DeclarativeAdapterConfig(_Model):
    """The common adapter cases without code: a path template and JSON field maps."""

    path: str | None = None
    request: JsonMapConfig = JsonMapConfig()
    response: JsonMapConfig = JsonMapConfig()


class RouteConfig(_Model):
    name: Name
    match: MatchConfig
    to: str
    mode: Mode = "legacy"
    percent: float | None = Field(None, ge=0, le=100)
    sticky: tuple[str, ...] = ()
    cohort: str | None = None
    fallback: bool = False
    adapter: str | DeclarativeAdapterConfig | None = None
    shadow: ShadowConfig | None = None
    rollback: RollbackConfig | None = None
    upgrade: tuple[str, ...] | None = None
    """Protocols tunnelled on ``Upgrade`` besides ``websocket`` (others are stripped);
    None when absent, so a route's document in the admin API is unchanged."""

    @field_validator("upgrade")
    @classmethod
    def _upgrade(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        for protocol in value:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~/-]+", protocol):
                raise ValueError(f"{protocol!r} is not a protocol name")
        return tuple(p.lower() for p in value)

    @field_validator("sticky")
    @classmethod
    def _sticky(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            kind, _, name = key.partition(":")
            if key != "ip" and (kind not in ("header", "cookie") or not name):
                raise ValueError(f"{key!r} is not header:NAME, cookie:NAME or ip")
        return value

    @field_validator("adapter")
    @classmethod
    def _adapter(
        cls, value: str | DeclarativeAdapterConfig | None
    ) -> str | DeclarativeAdapterConfig | None:
        if isinstance(value, str) and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"{value!r} is not an import path like package.module:Name")
        return value


class AdminConfig(_Model):
    listen: Listen = "127.0.0.1:8081"
    token: SecretStr | None = None
    audit_entries: int = Field(200, ge=1)
    hosts: tuple[str, ...] | None = None
    """Host names the admin listener answers (DNS rebinding); None: ``localhost`` and
    the ``listen`` host. IP addresses are always answered; ``*`` answers any name."""

    @field_validator("token", mode="before")
    @classmethod
    def _empty_token(cls, value: Any) -> Any:
        # ``token: ${STRANGLER_ADMIN_TOKEN}`` with the variable unset means "no token":
        # writes are then refused, never open.
        return None if value in ("", None) else value


class StateConfig(_Model):
    url: str = "memory://"
    namespace: str = "default"
    local_copy: str | bool = True
    """Where a replica keeps the last state it saw (served if the store is down at
    start): a path, true for the default place, false for none."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value != "memory://" and not re.match(r"^rediss?://", value):
            raise ValueError(f"{value!r} is not memory:// or redis://host:port/db")
        return value


class TracingConfig(_Model):
    """OpenTelemetry spans over OTLP/HTTP (needs the ``otel`` extra); off when absent."""

    otlp_endpoint: str
    """The collector's base URL (``http://collector:4318``); spans go to ``/v1/traces``."""
    service_name: str = "strangler"
    sample: float = Field(1.0, ge=0.0, le=1.0)
    """Share of new traces kept; a client's ``traceparent`` decides for its own trace."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^https?://[^/]", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class LimitsConfig(_Model):
    max_header_size: Size = 16 * 1024
    max_body: Size = 16 * 1024 * 1024
    client_idle_timeout: Duration = 60.0
    max_buffered_retry_body: Size = 64 * 1024


class ContextConfig(_Model):
    """A bounded context whose writes and data can move between legacy and its service.

    Who owns it now is runtime state (the state store), not config: see
    :mod:`strangler.control.ownership` and ``strangler cutover``."""

    routes: tuple[str, ...] = Field(min_length=1)
    """The context's routes (reads and writes); each in at most one context."""
    tables: tuple[str, ...] = ()
    """The ``sync.tables[].source`` entries whose data the context owns."""
    hold_timeout: Duration = Field(5.0, gt=0)
    """The drain must finish within it, or the cutover aborts (writes go to the old owner)."""
    max_held: int = Field(1000, ge=1)
    """Writes held per replica during a cutover; beyond it a write gets 503 (never lost)."""
    max_lag: Duration = Field(2.0, gt=0)
    """Precondition: the current direction's sync lag must be under it."""


class Config(_Model):
    version: Literal[1] = 1
    listen: Listen = "0.0.0.0:8080"
    admin: AdminConfig = AdminConfig()
    state: StateConfig = StateConfig()
    legacy: str
    upstreams: Mapping[str, UpstreamConfig]
    routes: tuple[RouteConfig, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    tls: TlsConfig | None = None
    pin_header: str | None = None
    access_log: str | None = None
    """One JSON line per request: ``-`` (stdout) or a file path; off when absent."""
    tracing: TracingConfig | None = None
    sync: SyncConfig | None = None
    contexts: Mapping[str, ContextConfig] = {}
    _source: Source = PrivateAttr(default_factory=lambda: Source(None))
    """The parsed file (for line numbers of problems found later)."""

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def context_of(self, route: str) -> str | None:
        """The context ``route`` belongs to, or None."""
        return next((name for name, c in self.contexts.items() if route in c.routes), None)


# --------------------------------------------------------------------- loading


def _under(key: str, keys: set[str]) -> bool:
    return any(key == k or key.startswith((k + ".", k + "[")) for k in keys)


def check_import(path: str, base_dir: Path | None) -> str | None:
    """None if ``package.module:Name`` imports, else why not."""
    try:
        resolve_import(path, base_dir)
    except ConfigError as exc:
        return exc.problems[0].message
    return None


def resolve_import(path: str, base_dir: Path | None = None) -> Any:
    """Import ``package.module:Name`` (the config's folder is on the path) and return Name."""
    module_name, _, attr = path.partition(":")
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError([Problem("", f"{path!r} does not import: {exc}")]) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError([Problem("", f"{path!r}: {module_name} has no {attr!r}")])
        target = getattr(target, part)
    return target


def parse_config(
    data: Any, *, base_dir: Path | None = None, source: str = "", where: Source | None = None
) -> Config:
    """Validate an already-parsed mapping. Raises ConfigError with every problem: the
    schema's and the cross-references' together, with line numbers when ``where`` is
    the parsed file (``read_yaml``)."""
    where = where or Source(data)
    if not isinstance(data, dict):
        raise ConfigError(where.locate([Problem("", "the file must be a mapping of keys")]), source)
    config: Config | None = None
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
        problems: list[Problem] = []
    except ValidationError as exc:
        problems = schema_problems(exc, data, Config)
    bad = {p.key for p in problems}
    problems += [p for p in cross_check(data, base_dir, check_import) if not _under(p.key, bad)]
    if config is None or problems:
        notes = [
            Problem("", f"${{{u.name}}} is not set in the environment", u.line) for u in where.unset
        ]
        located = sorted([*where.locate(problems), *notes], key=lambda p: p.line or 0)
        raise ConfigError(located, source)
    config._source = where
    return config


def locate(config: Config, problems: tuple[Problem, ...] | list[Problem]) -> list[Problem]:
    """``problems`` (found after loading, e.g. by the route table) with their lines."""
    return config._source.locate(problems)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate ``routes.yaml``. Raises ConfigError."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read: {exc.strerror}")], source) from exc
    return parse_config_text(text, env=env, base_dir=file.resolve().parent, source=source)


def parse_config_text(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    source: str = "",
) -> Config:
    """Parse, expand ``${VAR}`` in values, and validate. Raises ConfigError."""
    where = read_yaml(text, os.environ if env is None else env, source)
    return parse_config(where.data, base_dir=base_dir, source=source, where=where)
