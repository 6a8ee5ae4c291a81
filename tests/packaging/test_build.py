"""The compiled build and the pure one: which runs, and how to choose.

setup.py compiles the modules pyproject.toml lists with mypyc (scripts/setup does it in
place); strangler/build.py keeps them, or loads every one from its source with
STRANGLER_PURE=1 or when a source changed since the build. Each test runs Python in a
subprocess, as a user would start strangler, so the choice made at import is its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from strangler import build

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = EXTENSION_SUFFIXES[0]
PROBE = (
    "import strangler.routing.table as t, strangler.proxy.server as s;print(t.__file__, s.__file__)"
)


def _python(code: str, *, pure: bool = False, path: str = str(ROOT)) -> str:
    env = {**os.environ, "PYTHONPATH": path, "STRANGLER_PURE": "1" if pure else ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _listed() -> list[str]:
    """The module names pyproject.toml asks setup.py to compile."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["strangler"]
    pure = {ROOT / entry for entry in tool.get("pure", [])}
    names = []
    for entry in tool["compiled"]:
        path = ROOT / entry
        assert path.exists(), f"pyproject.toml lists {entry} to compile: it is gone"
        for source in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            if source.name != "__init__.py" and source not in pure:
                names.append(".".join(source.relative_to(ROOT).with_suffix("").parts))
    return names


compiled_here = pytest.mark.skipif(
    not build.compiled_files(), reason="no compiled build here (STRANGLER_PURE=1 scripts/setup)"
)


@compiled_here
def test_the_compiled_build_holds_every_listed_module_and_loads_them() -> None:
    assert sorted(build.compiled_files()) == sorted(_listed())
    assert all(f.endswith(SUFFIX) for f in _python(PROBE).split())
    assert _python("import strangler.build as b; print(b.DESCRIPTION)").startswith(
        "compiled: mypyc,"
    )


@compiled_here
def test_strangler_pure_loads_every_module_from_its_source() -> None:
    assert all(f.endswith(".py") for f in _python(PROBE, pure=True).split())
    version = subprocess.run(
        [sys.executable, "-m", "strangler", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "STRANGLER_PURE": "1"},
    ).stdout
    assert "(pure Python: STRANGLER_PURE=1)" in version


def test_a_source_edited_since_the_build_loads_instead_of_its_stale_compiled_module(
    tmp_path: Path,
) -> None:
    """In a checkout, a compiled module older than its source would run the old code:
    every compiled module then loads from source, and the build says why."""
    package = tmp_path / "pkg"
    package.mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (package / "__init__.py").write_text("")
    (package / "fresh.py").write_text("WHERE = 'fresh source'\n")
    (package / "edited.py").write_text("WHERE = 'edited source'\n")
    # Not loadable (not a real extension module): loading either would fail the import.
    for name in ("fresh", "edited"):
        (package / f"{name}{SUFFIX}").write_bytes(b"stale compiled code")
    os.utime(package / f"fresh{SUFFIX}", (2e9, 2e9))
    os.utime(package / "fresh.py", (1e9, 1e9))
    os.utime(package / f"edited{SUFFIX}", (1e9, 1e9))
    os.utime(package / "edited.py", (2e9, 2e9))
    code = (
        "import pathlib, sys; from strangler import build;"
        f"print(build.choose(pathlib.Path({str(package)!r})));"
        "import pkg.fresh, pkg.edited; print(pkg.fresh.WHERE); print(pkg.edited.WHERE)"
    )
    out = _python(code, path=tmp_path).splitlines()
    # PYTHONPATH=tmp_path: strangler itself comes from the installed package
    assert (
        out[-3]
        == "pure Python: pkg.edited changed since the compiled build; rebuild: pip install -e ."
    )
    assert out[-2:] == ["fresh source", "edited source"]


def test_the_build_requirements_are_locked() -> None:
    """scripts/setup builds with --no-build-isolation from the lock: mypy (mypyc) and the
    typed dependencies its check reads must all be there."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from tests.packaging.test_lock import LOCK, _entries

    locked = _entries(LOCK)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, requires):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"build requirement {requirement} is not in the lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True)
