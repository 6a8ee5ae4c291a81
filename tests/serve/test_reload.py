"""Hot reload of routes.yaml through the watcher: accepted, rejected, unchanged, forced."""

from __future__ import annotations

import os
from pathlib import Path

from strangler.config import load_config
from strangler.metrics import Metrics
from strangler.reload import ConfigWatcher
from strangler.routing.router import Router

from .conftest import routes_yaml


def watcher_for(path: Path) -> tuple[ConfigWatcher, Router, Metrics]:
    router = Router(load_config(path))
    metrics = Metrics()
    return ConfigWatcher(path, router, metrics), router, metrics


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    # make sure the change is visible even on coarse-mtime filesystems
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_a_valid_change_is_applied_and_counted(config_file: Path) -> None:
    watcher, router, metrics = watcher_for(config_file)
    old_table = router.table
    assert await watcher.check() is None
    rewrite(config_file, routes_yaml(mode="new"))
    assert await watcher.check() is True
    assert router.table is not old_table and router.table.by_name["customers"].mode == "new"
    assert router.config_version == 2 and router.last_reload_error is None
    assert metrics.merged().reloads == {"accepted": 1, "rejected": 0}


async def test_an_invalid_change_keeps_the_last_good_table_and_says_why(config_file: Path) -> None:
    watcher, router, metrics = watcher_for(config_file)
    good = router.table
    rewrite(config_file, routes_yaml(mode="sideways"))
    assert await watcher.check() is False
    assert router.table is good and router.config_version == 1
    assert router.last_reload_error is not None and "routes[0].mode" in router.last_reload_error
    assert "sideways" in router.last_reload_error
    assert "line 14: routes[0].mode" in router.last_reload_error  # where in the file
    # an ambiguous table is rejected the same way
    rewrite(
        config_file,
        routes_yaml(
            extra="""\
              - name: twin
                match: {path: "/api/customers/**"}
                to: customers
            """
        ),
    )
    assert await watcher.check() is False
    assert "ties with route 'customers'" in (router.last_reload_error or "")
    assert "line 16: routes[1].match" in (router.last_reload_error or "")
    # fixing the file clears the error
    rewrite(config_file, routes_yaml(mode="shadow"))
    assert await watcher.check() is True
    assert router.last_reload_error is None and router.table.by_name["customers"].mode == "shadow"
    assert metrics.merged().reloads == {"accepted": 1, "rejected": 2}


async def test_same_bytes_are_not_a_reload_but_a_forced_one_is(config_file: Path) -> None:
    watcher, router, _ = watcher_for(config_file)
    rewrite(config_file, config_file.read_text())
    assert await watcher.check() is None
    assert await watcher.check(force=True) is True
    assert router.config_version == 2


async def test_a_deleted_file_is_rejected_once(config_file: Path) -> None:
    watcher, router, metrics = watcher_for(config_file)
    config_file.unlink()
    assert await watcher.check() is False
    assert await watcher.check() is None
    assert "cannot read" in (router.last_reload_error or "")
    assert metrics.merged().reloads["rejected"] == 1
