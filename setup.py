"""The build's one piece of code: compile the data plane with mypyc when this machine can.

Everything else about the package is in pyproject.toml, including the list of compiled
modules (``[tool.strangler] compiled``). They are compiled when mypyc imports (it ships
with mypy: the build requirements and scripts/requirements.lock have it), a C compiler and
Python's headers are there, and ``STRANGLER_PURE`` is not ``1``; otherwise the package
installs as pure Python, the same code, and says why. ``strangler --version`` tells which
build runs (see strangler/build.py).

A module that no longer compiles fails the build with mypyc's message: fix it (the
constraints are in README.md, "The compiled build"), take it off the list, or install
with STRANGLER_PURE=1.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def compiled_sources() -> list[str]:
    """pyproject.toml's list: folders expanded to their modules (``__init__`` stays pure),
    less the ``pure`` ones. A listed file that is gone is skipped, with a warning."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["strangler"]
    pure = {ROOT / entry for entry in tool.get("pure", [])}
    sources: list[str] = []
    for entry in tool["compiled"]:
        path = ROOT / entry
        if not path.exists():
            print(f"strangler: {entry} is listed to compile but is gone", file=sys.stderr)
            continue
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        sources += [
            str(f.relative_to(ROOT)) for f in files if f.name != "__init__.py" and f not in pure
        ]
    return sources


def why_pure() -> str | None:
    if os.environ.get("STRANGLER_PURE") == "1":
        return "STRANGLER_PURE=1"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy)"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h; Debian: python3-dev)"
    return None


# pip runs this file for metadata too (egg_info, dist_info): compile only for a build.
_BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def ext_modules() -> list[Any]:
    if not _BUILDS.intersection(sys.argv[1:]):
        return []
    why = why_pure()
    if why is not None:
        print(f"strangler: building pure Python: {why}", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    sources = compiled_sources()
    print(f"strangler: compiling {len(sources)} modules with mypyc", file=sys.stderr)
    # One shared library (strangler__mypyc) for the group, so calls between the
    # compiled modules stay native.
    try:
        return list(mypycify(sources, opt_level="3", group_name="strangler"))
    except (SystemExit, Exception) as exc:
        # mypyc type-checks first: under dependency versions other than the lock's (a
        # plain `pip install .` resolves the newest), a type error must not stop the
        # install. CI still fails: tests/packaging/test_build.py wants every module compiled.
        print(f"strangler: building pure Python: mypyc failed ({exc!r})", file=sys.stderr)
        return []


setup(ext_modules=ext_modules())
