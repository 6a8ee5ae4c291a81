"""The deployment files agree with each other and with the code, without a container engine.

What a ``docker compose config`` and a first ``up`` would catch without a Docker
engine: every service a ``depends_on`` names exists, every mounted or built file
exists, the ports the proxy and worker listen on are the ones Prometheus scrapes,
the Debezium connector has the settings the sync relies on and captures exactly
the tables routes.compose.yaml maps, and the Dockerfile passes hadolint.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import strangler
from sample_monolith import db as legacy_db
from strangler.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENV = {"STRANGLER_ADMIN_TOKEN": "t", "POSTGRES_PASSWORD": "p"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _connector(file: str = "debezium-connector.json") -> dict[str, Any]:
    data = json.loads((DEPLOY / file).read_text())
    assert isinstance(data, dict)
    return data


CONNECTORS = ("debezium-connector.json", "debezium-connector-customers.json")
"""The monolith's, and the customers service's (the way back after a cutover)."""


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    assert set(services) >= {
        "postgres", "kafka", "connect", "connect-register", "redis", "prometheus",
        "monolith", "customers", "catalog", "proxy", "sync",
    }  # fmt: skip
    assert "wal_level=logical" in services["postgres"]["command"]
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft: no ZooKeeper anywhere
    assert not any("zookeeper" in name for name in services)
    assert services["proxy"]["command"] == ["serve", "-c", "/etc/strangler/routes.yaml"]
    assert services["sync"]["command"] == ["sync", "-c", "/etc/strangler/routes.yaml"]


def test_compose_references_only_what_exists() -> None:
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on unknown service {other}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose.get("volumes", {}), f"{name}: unknown volume {source}"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        if service.get("image") == "strangler:local":
            assert any("build" in s for s in services.values()), "nothing builds strangler:local"
    # the sample apps' entry points exist as modules
    for name in ("monolith", "customers", "catalog"):
        module = services[name]["entrypoint"][-1]
        assert (ROOT / module.replace(".", "/") / "__main__.py").is_file()


def test_connector_registration_has_the_settings_sync_relies_on() -> None:
    for file in CONNECTORS:
        connector = _connector(file)
        config = connector["config"]
        assert connector["name"]
        assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
        assert config["plugin.name"] == "pgoutput"
        assert config["decimal.handling.mode"] == "string"
        assert config["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
        assert config["database.hostname"] in _compose()["services"]
        assert config["database.password"].startswith("${env:")  # no secret in the file
        # Every table into one single-partition topic: a drain's watermark comes after
        # every change committed before it.
        assert config["transforms.route.type"].endswith("ByLogicalTableRouter")
        assert config["topic.creation.default.partitions"] == "1"
        assert "public.strangler_watermarks" in config["table.include.list"].split(",")
        assert f"/{file}" in " ".join(_compose()["services"]["connect-register"]["volumes"])
    captured = set(_connector()["config"]["table.include.list"].split(","))
    assert captured == {f"public.{t}" for t in ("customer", "product", "strangler_watermarks")}
    assert {t.split(".")[1] for t in captured} - {"strangler_watermarks"} <= set(
        legacy_db.metadata.tables
    )
    # The watermark table exists before the publications are created, in both databases.
    init = (DEPLOY / "postgres-init.sql").read_text()
    assert init.count("CREATE TABLE strangler_watermarks") == 2 and "\\connect customers" in init


def test_compose_routes_agree_with_connector_and_prometheus() -> None:
    config = load_config(DEPLOY / "routes.compose.yaml", env=ENV)
    assert config.sync is not None
    sources = {s.name: s for s in config.sync.sources}
    for file in CONNECTORS:
        connector = _connector(file)["config"]
        topic = connector["transforms.route.topic.replacement"]
        readers = [s for s in sources.values() if s.options["topics"] == [topic]]
        assert len(readers) == 1, topic
        # ... and the drain writes its watermark into the database that topic comes from.
        assert (readers[0].monolith or "").endswith(f"/{connector['database.dbname']}")
    captured = set(_connector()["config"]["table.include.list"].split(","))
    assert {t.source for t in config.sync.tables} == captured - {"public.strangler_watermarks"}
    back = {t.split(".")[1] for t in _connector(CONNECTORS[1])["config"]["table.include.list"]
            .split(",")}  # fmt: skip
    assert back == {"customers", "addresses", "strangler_watermarks"}
    assert config.contexts["customers"].tables == ("public.customer",)
    services = _compose()["services"]
    for upstream in config.upstreams.values():
        host = re.match(r"https?://([^:/]+)", upstream.url)
        assert host and host.group(1) in services, upstream.url
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    admin_port = config.admin.listen.rpartition(":")[2]
    sync_port = config.sync.listen.rpartition(":")[2]
    assert targets == {f"proxy:{admin_port}", f"sync:{sync_port}"}


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
    assert re.search(r"^USER 10001", text, re.M)  # non-root
    assert 'ENTRYPOINT ["strangler"]' in text
    assert 'CMD ["serve", "-c", "/etc/strangler/routes.yaml"]' in text
    assert "HEALTHCHECK" in text and "8081/healthz" in text
    assert f"ARG STRANGLER_VERSION={strangler.__version__}" in text
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+)", text, re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (dev extra)")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        ["hadolint", "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
