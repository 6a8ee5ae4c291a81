"""`strangler explain --admin URL` applies a running proxy's live overrides."""

from __future__ import annotations

from pathlib import Path

from .stack import in_process, upstreams, write_config
from .test_cli import cli


async def test_explain_reads_the_live_override_only_with_admin(tmp_path: Path) -> None:
    async with upstreams() as ups:
        where = write_config(tmp_path, ups)
        async with in_process(where):
            flip = await cli("flip", "customers", "new", "--admin", where.admin)
            assert flip.code == 0, flip.err
            config = str(where.config)

            offline = await cli("explain", "GET", "/api/customers/1", "-c", config)
            assert offline.code == 0, offline.err
            assert "mode      legacy (from config)" in offline.out
            assert "answers   monolith" in offline.out
            assert "routes.yaml only" in offline.out

            live = await cli(
                "explain", "GET", "/api/customers/1", "-c", config, "--admin", where.admin
            )
            assert live.code == 0, live.err
            assert "mode      new (from override)" in live.out
            assert f"upstream  {ups.new}" in live.out
            assert f"live from {where.admin}" in live.out
