"""A replica's local copy of the shared state: what it serves if Redis is down at start.

Without it a replica started while Redis is unreachable would serve routes.yaml
alone while the others keep their overrides (replicas disagree). So each
replica writes the last state it saw from the store (overrides, context
owners, the version) to a small JSON file whenever it changes, and a replica
that cannot reach the store at start serves that copy until the store answers
— then it reconciles with the store, which always wins.

The file lives at ``state.local_copy`` (``--local-copy``); by default under the
user's state folder (``$XDG_STATE_HOME`` or ``~/.local/state``), named after the
namespace and the store's address, so two stores never share a copy. Writes are
atomic (a temporary file renamed over the old one); a copy that cannot be
written or read is logged and ignored, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strangler.config import StateConfig
from strangler.control.ownership import Ownership
from strangler.control.state import StateSnapshot
from strangler.override import Override

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass(frozen=True)
class SavedState:
    """A copy read back from disk."""

    snapshot: StateSnapshot
    saved_at: float
    """Wall-clock time it was written."""


def default_path(url: str, namespace: str, env: Mapping[str, str] | None = None) -> Path:
    """Where a replica keeps its copy when ``state.local_copy`` is not set."""
    env = os.environ if env is None else env
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(f"{url}\n{namespace}".encode()).hexdigest()[:12]
    return base / "strangler" / f"state-{namespace}-{digest}.json"


def local_copy_path(config: StateConfig, public_url: str) -> Path | None:
    """The copy's path for this config, or None when there is none: turned off
    (``local_copy: false``), or ``memory://`` (forgotten on stop, as it says)."""
    if config.url == "memory://" or config.local_copy is False:
        return None
    if isinstance(config.local_copy, str):
        return Path(config.local_copy)
    return default_path(public_url, config.namespace)


class LocalCopy:
    def __init__(self, path: Path, url: str, namespace: str) -> None:
        self.path = path
        self.url = url
        self.namespace = namespace
        self._warned = False

    def save(self, snapshot: StateSnapshot) -> None:
        """Write ``snapshot`` (atomically). Blocking file I/O: call it off the loop."""
        data = {
            "format": FORMAT,
            "url": self.url,
            "namespace": self.namespace,
            "saved_at": time.time(),
            "version": snapshot.version,
            "overrides": {k: v.to_dict() for k, v in snapshot.overrides.items()},
            "ownerships": {k: v.to_dict() for k, v in snapshot.ownerships.items()},
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot keep the local copy of the state at %s: %s", self.path, exc)
                self._warned = True
            return
        self._warned = False

    def load(self) -> SavedState | None:
        """The saved state, or None when there is none or it does not belong to this store."""
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring the local copy of the state at %s: %s", self.path, exc)
            return None
        if data.get("format") != FORMAT or (data.get("url"), data.get("namespace")) != (
            self.url,
            self.namespace,
        ):
            log.warning("ignoring %s: it is the copy of another state store", self.path)
            return None
        try:
            snapshot = StateSnapshot(
                int(data["version"]),
                {k: Override.from_dict(v) for k, v in data["overrides"].items()},
                {k: Ownership.from_dict(v) for k, v in data["ownerships"].items()},
            )
            return SavedState(snapshot, float(data["saved_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring the local copy of the state at %s: %s", self.path, exc)
            return None
