"""CDC source kinds come from one registry (``sync_config.SOURCE_KINDS``): the config
accepts exactly its kinds, validates each kind's options with the kind's own model,
and the worker builds a source through the same entry. Loading a config does not
import the CDC package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from strangler.config import parse_config_text
from strangler.errors import ConfigError
from strangler.sync.source import build_source
from strangler.sync.sources.sqlite import SqliteSource
from strangler.sync_config import SOURCE_KINDS, SyncConfig, options_model

HEAD = """
legacy: monolith
upstreams: {monolith: {url: "http://127.0.0.1:9"}}
"""


def test_an_unknown_kind_is_refused_with_the_kinds_there_are() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(HEAD + "sync:\n  sources: [{name: m, kind: mysql, options: {}}]\n")
    text = str(caught.value)
    assert "sync.sources[0]" in text
    assert "'mysql' is not one of debezium, kafka, pgoutput, sqlite" in text


@pytest.mark.parametrize("kind", sorted(SOURCE_KINDS))
def test_every_registered_kind_has_an_options_model_and_a_factory(kind: str) -> None:
    model = options_model(kind)
    assert model is not None and issubclass(model, BaseModel)
    module = __import__(SOURCE_KINDS[kind].module, fromlist=["build"])
    assert callable(module.build)


def test_the_worker_builds_a_source_through_the_registry(tmp_path: Path) -> None:
    config = SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "sqlite",
                     "options": {"database": "monolith.db", "tables": ["customers"]}}],
        "targets": {"svc": f"sqlite:///{tmp_path / 'svc.db'}"},
    })  # fmt: skip
    source = build_source(config.sources[0], config, base_dir=tmp_path)
    assert isinstance(source, SqliteSource)
    assert source.path == tmp_path / "monolith.db"


def test_loading_a_config_with_a_sync_section_does_not_import_the_cdc_package() -> None:
    code = (
        "import sys\n"
        "from strangler.config import parse_config_text\n"
        f"parse_config_text({HEAD!r} + 'sync:\\n  targets: {{svc: \"sqlite:///x.db\"}}\\n')\n"
        "print(sorted(m for m in sys.modules if m.startswith('strangler.sync.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
