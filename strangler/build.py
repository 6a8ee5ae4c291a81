"""Which build runs: the data plane compiled by mypyc, or the same modules as pure Python.

``setup.py`` compiles the modules listed in ``pyproject.toml`` (``[tool.strangler]
compiled``) when mypyc and a C compiler are there. Each compiled module lands next to its
source as an extension module (``table.cpython-311-x86_64-linux-gnu.so`` beside
``table.py``), which Python's import prefers to the source.

:func:`choose` runs first thing when ``strangler`` is imported, because which code loads
can only be decided before the first data-plane import. It keeps the compiled modules
unless ``STRANGLER_PURE=1`` is set, or, in a source checkout, a source is newer than its
compiled module (edited or checked out since the last build, so the compiled one would
run stale code): then every compiled module loads from its source instead, all together,
because compiled modules call each other's native classes directly. ``strangler
--version`` and ``strangler serve``'s first log line say which build runs.

This module is never compiled itself, and imports nothing of strangler.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent
_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def compiled_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Module name -> its compiled extension file, for every compiled module on disk."""
    found: dict[str, Path] = {}
    for path in package.rglob("*"):
        suffix = next((s for s in _SUFFIXES if path.name.endswith(s)), None)
        if suffix is None:
            continue
        source = path.with_name(path.name[: -len(suffix)] + ".py")
        if source.exists():
            parts = source.relative_to(package.parent).with_suffix("").parts
            found[".".join(parts)] = path
    return found


def _stale(compiled: dict[str, Path], package: Path) -> list[str]:
    """Modules whose source is newer than their compiled file, in a source checkout."""
    if not (package.parent / "pyproject.toml").exists():
        return []  # an installed wheel: the two came from one build
    stale = []
    for name, path in compiled.items():
        if path.with_name(name.rsplit(".", 1)[-1] + ".py").stat().st_mtime > path.stat().st_mtime:
            stale.append(name)
    return sorted(stale)


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the listed modules' ``.py`` files, ahead of their compiled extension modules."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


DESCRIPTION = "pure Python"
"""What :func:`choose` decided, for ``--version`` and the logs."""

_SOURCES = _Sources({})


def choose(package: Path = PACKAGE) -> str:
    """Keep the compiled modules, or load every one from its source; say which build runs."""
    global DESCRIPTION
    compiled = compiled_files(package)
    if not compiled:
        DESCRIPTION = "pure Python"
        return DESCRIPTION
    why = ""
    if os.environ.get("STRANGLER_PURE") == "1":
        why = "STRANGLER_PURE=1"
    elif stale := _stale(compiled, package):
        why = f"{stale[0]} changed since the compiled build; rebuild: pip install -e ."
    if why:
        for name, path in compiled.items():
            _SOURCES.sources[name] = path.with_name(name.rsplit(".", 1)[-1] + ".py")
        if _SOURCES not in sys.meta_path:
            sys.meta_path.insert(0, _SOURCES)
        DESCRIPTION = f"pure Python: {why}"
    else:
        DESCRIPTION = f"compiled: mypyc, {len(compiled)} modules"
    return DESCRIPTION
