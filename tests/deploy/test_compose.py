"""The compose files: both validated by compose itself, and the Debian-built variant
brought up whole and gone through.

deploy/compose.yaml needs Kafka, Debezium Connect and Prometheus images from a registry,
so here it is only validated (``config``). deploy/compose.debian.yaml runs: PostgreSQL
(wal_level=logical) and Redis from Debian's packages, the monolith, both services, the
sync worker and the proxy from the strangler image. A legacy client reads a customer
through the proxy, the route is flipped to the service with the admin token, and the
same read comes back unchanged from the service, whose data the sync worker copied.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.engine import ROOT, Container, build_stack, compose_command, docker
from tests.support.net import free_port

DEPLOY = ROOT / "deploy"
TOKEN = "compose-test-token"
SERVICES = {"postgres", "redis", "monolith", "customers", "catalog", "sync", "proxy"}


def _compose(env: dict[str, str], file: str, *args: str, timeout: float = 300) -> str:
    command = compose_command()
    if command is None:
        pytest.skip("no compose here (docker compose or Debian's docker-compose): scripts/setup")
    result = subprocess.run(
        [*command, "-f", file, *args],
        cwd=DEPLOY,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("file", ["compose.yaml", "compose.debian.yaml"])
def test_compose_validates_the_files(file: str) -> None:
    env = {"STRANGLER_ADMIN_TOKEN": TOKEN, "POSTGRES_PASSWORD": "p"}
    services = set(_compose(env, file, "config", "--services").split())
    assert services >= SERVICES
    _compose(env, file, "config", "-q")


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
         body: bytes | None = None) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            data = answer.read()
            status, answer_headers = answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    ctype = answer_headers.get("Content-Type", "")
    return status, answer_headers, json.loads(data) if "json" in ctype else data.decode()


@pytest.fixture
def debian_stack(image: str) -> Iterator[dict[str, str]]:
    """compose.debian.yaml up, under a project name of its own; down -v afterwards."""
    build_stack()
    env = {
        "COMPOSE_PROJECT_NAME": f"strangler-test-{secrets.token_hex(3)}",
        "STRANGLER_ADMIN_TOKEN": TOKEN,
        "POSTGRES_PASSWORD": secrets.token_hex(8),
        "STRANGLER_PORT": str(free_port()),
        "STRANGLER_ADMIN_PORT": str(free_port()),
        "STRANGLER_SYNC_PORT": str(free_port()),
    }
    try:
        _compose(env, "compose.debian.yaml", "up", "-d")
        yield env
    finally:
        logs = subprocess.run(
            [*(compose_command() or []), "-f", "compose.debian.yaml", "logs", "--tail", "30"],
            cwd=DEPLOY, env={**os.environ, **env}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        print(logs.stdout[-6000:])
        _compose(env, "compose.debian.yaml", "down", "-v", "--remove-orphans")


def _wait(what: str, ready: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.5)


def _applied(sync: str) -> int:
    try:
        status, _, data = _get(sync + "/api/sync")
    except OSError:
        return -1
    return int(data["totals"]["applied"]) if status == 200 else -1


@pytest.mark.slow
# Its fixture builds the image when no test did yet (scripts/image: debootstrap, the
# wheels, docker build): 250 s on a loaded machine on its own, past the default 300 s
# once the stack is up too (a clean-clone run timed out here). tests/deploy/test_image.py
# gives the same allowance.
@pytest.mark.timeout(1500)
def test_the_debian_stack_comes_up_and_serves_through_the_proxy(
    debian_stack: dict[str, str],
) -> None:
    env = debian_stack
    proxy = f"http://127.0.0.1:{env['STRANGLER_PORT']}"
    admin = f"http://127.0.0.1:{env['STRANGLER_ADMIN_PORT']}"
    sync = f"http://127.0.0.1:{env['STRANGLER_SYNC_PORT']}"
    ids = _compose(env, "compose.debian.yaml", "ps", "-q").split()
    containers = {str(Container(cid).inspect()["Name"]): Container(cid) for cid in ids}
    assert len(containers) == len(SERVICES), containers
    _wait("every service's HEALTHCHECK healthy",
          lambda: all(c.health() == "healthy" for c in containers.values()))  # fmt: skip

    # the sync worker copied the monolith (2,000 customers, 200 products) to PostgreSQL
    _wait("the snapshot applied", lambda: _applied(sync) >= 2000 + 200)

    read = proxy + "/api/customers/7"
    status, headers, legacy = _get(read)
    assert status == 200 and headers["x-strangler-upstream"] == "monolith"
    assert legacy["CUST_ID"] == 7
    flip = json.dumps({"mode": "new"}).encode()
    override = admin + "/api/routes/customers/override"
    assert _get(override, method="PUT", body=flip)[0] == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _get(override, headers=bearer, method="PUT", body=flip)[0] == 200
    status, headers, new = _get(read)
    assert status == 200 and headers["x-strangler-upstream"] == "customers"
    assert new == legacy  # the service's copy, through the adapter, in the legacy shape

    # the flip lives in the stack's Redis; /healthz and /metrics answer
    _, _, routes = _get(admin + "/api/routes")
    assert routes["state"]["shared"] and routes["state"]["connected"], routes["state"]
    assert _get(admin + "/healthz")[0] == 200
    # two proxy workers here (Redis state): each spools its counts about once a second
    _wait("the service's answer counted in /metrics",
          lambda: 'upstream="customers"' in _get(admin + "/metrics")[2], timeout=30)  # fmt: skip

    # PostgreSQL from Debian's package, with logical decoding on
    postgres = next(c for name, c in containers.items() if "postgres" in name)
    wal = docker("exec", postgres.id, "psql", "-h", "/run/postgresql", "-p", "5432",
                 "-U", "postgres", "-tAc", "SHOW wal_level")  # fmt: skip
    assert wal == "logical"
