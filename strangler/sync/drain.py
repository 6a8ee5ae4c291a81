"""Drain: wait until sync has applied every write of a context's old owner to the other side.

The cutover's middle step (``strangler.control.cutover``). With the context's writes
held at the proxy, ``drain`` takes the old owner's current position by writing a
watermark (``watermark.py``) into each database that owner's side is captured from;
the watermark's change event is ordered after every write committed before it,
whatever the capture (SQLite triggers, Debezium's slot, Kafka topics). It then waits
until the running sync worker reports, in the target database, that it has reached
the watermark — so everything before it is applied. It also writes a watermark into
the new owner's side, where the worker holds that stream until the cutover is over
(see ``direction.py``): changes made there before the flip are judged by the old
owner, after it by the new one.

It runs in the process that orchestrates the cutover and reaches the databases
through the URLs in ``sync:``. ``lag_seconds`` is the same round trip, bounded: how
long a watermark takes to get through now.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from strangler.config import Config
from strangler.errors import ConfigError, Problem, SyncError
from strangler.ownership import Owner
from strangler.sync import watermark
from strangler.sync.db import db_error, open_engine, safe_url
from strangler.sync_config import SourceConfig, SyncConfig

POLL = 0.01
"""How often the target is asked whether the watermark got through (seconds)."""


class DrainTimeout(SyncError):
    """Sync did not apply the old owner's writes up to its position in time."""


@dataclass(frozen=True)
class Drained:
    position: str
    """Where the old owner's side was when the writes were held (per source:
    ``source@position`` of the watermark, e.g. ``shop@12345/12345``)."""
    seconds: float


@dataclass(frozen=True)
class _Leg:
    """One captured database of a side and the target the worker records it in."""

    source: str
    database: str
    target: str


def legs(
    sync: SyncConfig, tables: tuple[str, ...], side: Owner, base_dir: Path | None
) -> list[_Leg]:
    """Where a side of these tables is captured, and where sync writes what it reads."""
    sources = {s.name: s for s in sync.sources}
    found: dict[tuple[str, str], _Leg] = {}
    for table in tables:
        mapping = next((m for m in sync.tables if m.source == table), None)
        if mapping is None:
            raise ConfigError([Problem("contexts", f"table {table} is not mapped in sync.tables")])
        if side == "legacy":
            if mapping.from_source is None:
                raise ConfigError(
                    [Problem("sync.tables", f"{table}: from_source is needed to drain it")]
                )
            source, target = sources[mapping.from_source], mapping.target
        else:
            if mapping.reverse is None:
                raise ConfigError(
                    [Problem("sync.tables", f"table {table} cannot be reversed: no reverse:")]
                )
            source, target = sources[mapping.reverse.source], mapping.reverse.target
        url = _captured_url(source, sync, base_dir)
        found.setdefault((source.name, target), _Leg(source.name, url, target))
    return list(found.values())


def _captured_url(source: SourceConfig, sync: SyncConfig, base_dir: Path | None) -> str:
    url = source.monolith_url()
    if url is None:
        raise ConfigError(
            [
                Problem(
                    f"sync.sources.{source.name}.monolith",
                    f"a {source.kind} source of a context needs the URL of the database it"
                    " captures (the drain writes its watermark there)",
                )
            ]
        )
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and base_dir:
        url = f"sqlite:///{base_dir / url.removeprefix('sqlite:///')}"
    return url


async def drain(
    config: Config,
    context: str,
    owner: Owner,
    timeout: float,
    *,
    base_dir: Path | None = None,
    probe: bool = False,
    cutover: str = "",
) -> Drained:
    """Wait until every write ``owner`` made to ``context``'s tables is applied on the
    other side; raises ``DrainTimeout`` after ``timeout`` seconds. ``probe``: only
    measuring (the lag precondition): the mark never holds a stream. ``cutover``: the
    id of the cutover draining, written into its watermarks (``watermark.py``)."""
    if config.sync is None:
        return Drained("none", 0.0)
    tables = tuple(config.contexts[context].tables)
    return await drain_tables(
        config.sync,
        context,
        tables,
        owner,
        timeout,
        base_dir=base_dir,
        probe=probe,
        cutover=cutover,
    )


async def drain_tables(
    sync: SyncConfig,
    context: str,
    tables: tuple[str, ...],
    owner: Owner,
    timeout: float,
    *,
    base_dir: Path | None = None,
    probe: bool = False,
    cutover: str = "",
) -> Drained:
    started = time.monotonic()
    old = legs(sync, tables, owner, base_dir)
    other: Owner = "service" if owner == "legacy" else "legacy"
    new = legs(sync, tables, other, base_dir) if _reversible(sync, tables) else []
    engines: dict[str, Engine] = {}
    try:
        # A probe's marks say epoch -1: the worker records them but never holds a stream
        # there (a cutover may start right after the probe; only its own drain may hold).
        epoch, cutover = (-1, "") if probe else (0, cutover)
        marks = await asyncio.to_thread(_write_marks, old, context, engines, epoch, cutover)
        if not probe:
            await asyncio.to_thread(_write_marks, new, context, engines, epoch, cutover)
        positions: list[str] = []
        for leg, seq in zip(old, marks, strict=True):
            target = sync.targets[leg.target]
            position = await _wait(leg, seq, target, engines, started + timeout, context)
            positions.append(f"{leg.source}@{position}")
    finally:
        for engine in engines.values():
            engine.dispose()
    return Drained(" ".join(positions) or "none", time.monotonic() - started)


def _reversible(sync: SyncConfig, tables: tuple[str, ...]) -> bool:
    return all(any(m.source == t and m.reverse is not None for m in sync.tables) for t in tables)


def _engine(url: str, engines: dict[str, Engine]) -> Engine:
    if url not in engines:
        engines[url] = open_engine(url)
    return engines[url]


def _write_marks(
    legs_: list[_Leg], context: str, engines: dict[str, Engine], epoch: int, cutover: str
) -> list[int]:
    marks = []
    for leg in legs_:
        try:
            with _engine(leg.database, engines).begin() as conn:
                marks.append(watermark.write(conn, context, epoch, cutover))
        except SQLAlchemyError as exc:
            raise db_error(f"drain: writing a watermark to {safe_url(leg.database)}", exc) from exc
    return marks


async def _wait(
    leg: _Leg, seq: int, target: str, engines: dict[str, Engine], deadline: float, context: str
) -> str:
    while True:
        found = await asyncio.to_thread(_reached, leg, target, engines, context)
        if found is not None and found[0] >= seq:
            return found[1]
        if time.monotonic() > deadline:
            raise DrainTimeout(
                f"context {context}: sync has not applied {leg.source}'s writes up to its"
                f" watermark #{seq} in time; is `strangler sync` running and caught up?"
                " (GET /api/sync shows its lag)"
            )
        await asyncio.sleep(POLL)


def _reached(
    leg: _Leg, target: str, engines: dict[str, Engine], context: str
) -> tuple[int, str] | None:
    try:
        with _engine(target, engines).connect() as conn:
            return watermark.reached(conn, leg.source, context)
    except SQLAlchemyError:
        return None  # not set up yet (the worker creates its tables) or briefly down


async def lag_seconds(
    config: Config, context: str, owner: Owner, *, limit: float = 10.0, base_dir: Path | None = None
) -> float:
    """How long sync takes now to apply ``owner``'s writes to the other side (a
    watermark's round trip; ``limit`` if it does not get through within it)."""
    try:
        return (await drain(config, context, owner, limit, base_dir=base_dir, probe=True)).seconds
    except SyncError:  # DrainTimeout, or a database that cannot be reached
        return limit
