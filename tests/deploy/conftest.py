"""Fixtures for the image tests: a Docker engine (skipped where none can be started) and
the image, built once per session by scripts/image (cached between sessions)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.deploy.engine import IMAGE, NoEngine, build_image, start_engine, stop_engine


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    try:
        daemon = start_engine(log)
    except NoEngine as exc:
        pytest.skip(f"no container engine here, image tests skipped: {exc}")
    try:
        yield
    finally:
        stop_engine(daemon)


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """The tag of the image scripts/image built from this checkout."""
    started = time.monotonic()
    report = build_image()
    print(f"\n{report}scripts/image took {time.monotonic() - started:.0f} s")
    return IMAGE
