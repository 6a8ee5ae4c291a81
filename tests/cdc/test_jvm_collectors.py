"""Python and Java collect garbage each on its own once the JVM is up (real JVM): a Java
GC no longer runs a full Python collection with the GIL held, and a Python collection
no longer measures the process or forces a Java GC (see ``_unlink_collectors``)."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest

from strangler.sync.sources.embedded_engine import ensure_jvm

jpype = pytest.importorskip("jpype")


def test_java_gcs_run_no_python_collection() -> None:
    ensure_jvm()
    full: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(count)
    try:
        for _ in range(4):
            jpype.JClass("java.lang.System").gc()
            time.sleep(0.6)  # JPype's queue thread looks every 0.25 s
    finally:
        gc.callbacks.remove(count)
    assert full == []


def test_python_collections_do_not_call_into_jpype() -> None:
    ensure_jvm()
    assert jpype._jpype._collect not in gc.callbacks
