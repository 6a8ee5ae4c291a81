"""The lock is what a fresh machine installs: it must cover pyproject.toml and agree with itself.

A dependency added to ``pyproject.toml`` without ``scripts/update-deps`` would make
``scripts/setup`` install a package set that lacks it (pip installs the lock with
``--no-deps`` for the project), so this fails first, naming the requirement.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import strangler
from strangler import build

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "scripts" / "requirements.lock"
IMAGE_LOCK = ROOT / "scripts" / "requirements-image.lock"
_ENTRY = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)(?: ; (.+?))? \\$")


def _entries(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) for the entries whose markers hold on Linux, Python 3.11."""
    env = {**default_environment(), "sys_platform": "linux", "python_full_version": "3.11.7"}
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        found = _ENTRY.match(line)
        if not found:
            continue
        name, version, marker = found.groups()
        if marker and not Marker(marker).evaluate(env):
            continue
        hashes = set()
        for follow in lines[i + 1 :]:
            if not follow.startswith("    --hash="):
                break
            hashes.add(follow.split("=", 1)[1].rstrip(" \\"))
        entries[canonicalize_name(name)] = (version, frozenset(hashes))
    return entries


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += [Requirement(r) for r in extra if not r.startswith("strangler[")]
    return declared


def test_every_declared_requirement_is_locked_within_its_range() -> None:
    locked = _entries(LOCK)
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in the lock: run scripts/update-deps"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock has {name}=={version}, outside {requirement}: run scripts/update-deps"
        )


def test_every_locked_file_is_pinned_by_hash() -> None:
    for path in (LOCK, IMAGE_LOCK):
        for name, (_, hashes) in _entries(path).items():
            assert hashes, f"{path.name}: {name} has no hash"


def test_the_image_installs_the_same_versions_as_ci() -> None:
    locked, image = _entries(LOCK), _entries(IMAGE_LOCK)
    assert {"aiohttp", "pydantic", "redis", "sqlalchemy", "uvloop", "psycopg"} <= image.keys()
    assert not {"pytest", "mypy", "ruff", "playwright"} & image.keys(), "dev tools in the image"
    for name, (version, hashes) in image.items():
        assert name in locked, f"the image lock has {name}, the lock does not"
        assert locked[name] == (version, hashes), f"{name}: image {version}, lock {locked[name][0]}"


def test_the_installed_packages_are_the_locked_ones() -> None:
    if os.environ.get("STRANGLER_UNLOCKED") == "1":
        pytest.skip("scripts/test --latest runs against the newest releases, not the lock")
    for name in ("redis", "aiohttp", "sqlalchemy", "mypy", "ruff"):
        assert metadata.version(name) == _entries(LOCK)[name][0], name


def test_version_from_both_entry_points() -> None:
    for argv in (["strangler", "--version"], [sys.executable, "-m", "strangler", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        # the version, and which build runs (the same choice as this process made)
        assert done.stdout.strip() == f"strangler {strangler.__version__} ({build.DESCRIPTION})"
    assert metadata.version("strangler") == strangler.__version__
