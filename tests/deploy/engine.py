"""The container engine for the image tests: find or start ``dockerd``, build the image,
run containers on the host's network.

Everything goes through the ``docker`` command line, as a person would type it. Containers
run with ``--network host``: the upstreams and PostgreSQL the tests start listen on the
host's loopback, and the container's listeners land there too, so no traffic leaves
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "strangler:local"


class NoEngine(Exception):
    """No container engine can be used here; the message says why (the tests skip)."""


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def _answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_engine(log: Path) -> subprocess.Popen[bytes] | None:
    """A running Docker engine: the machine's (None), or ``dockerd`` started here.

    Raises NoEngine, saying why, where neither is possible.
    """
    if shutil.which("docker") is None:
        raise NoEngine("no docker command: install Debian's docker.io (bash scripts/setup)")
    if _answers():
        return None
    if shutil.which("dockerd") is None:
        raise NoEngine("no Docker engine running and no dockerd to start (bash scripts/setup)")
    with log.open("wb") as out:
        daemon = subprocess.Popen(["dockerd"], stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _answers():
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop_engine(daemon)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise NoEngine(f"dockerd could not be started here: {' / '.join(tail)}")
        time.sleep(0.3)
    return daemon


def stop_engine(daemon: subprocess.Popen[bytes] | None) -> None:
    if daemon is None or daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def build_image(*args: str) -> str:
    """``bash scripts/image`` (base, wheelhouse, build; cached between runs); its report."""
    result = subprocess.run(
        ["bash", "scripts/image", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "STRANGLER_IMAGE": IMAGE},
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        raise AssertionError(f"scripts/image failed:\n{result.stdout}\n{tail}")
    return result.stdout


@dataclass
class Container:
    id: str

    def inspect(self) -> dict[str, object]:
        data = json.loads(docker("inspect", self.id))
        assert isinstance(data, list)
        found = data[0]
        assert isinstance(found, dict)
        return found

    def health(self) -> str:
        """The image's HEALTHCHECK verdict: starting, healthy or unhealthy."""
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.id)

    def exec(self, *command: str) -> str:
        return docker("exec", self.id, *command)

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True)
        return result.stdout + result.stderr

    def wait(self, timeout: float = 60) -> int:
        return int(docker("wait", self.id, timeout=timeout))

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.health()) != "healthy":
            assert status != "unhealthy", f"HEALTHCHECK says unhealthy:\n{self.logs()}"
            assert time.monotonic() < deadline, f"still {status} after {timeout}s:\n{self.logs()}"
            time.sleep(0.5)


@contextlib.contextmanager
def container(*args: str, image: str = IMAGE) -> Iterator[Container]:
    """``docker run -d --network host ARGS... image``; removed at the end whatever happened.

    ``args`` before ``--`` are options for ``docker run``, after it the command.
    """
    split = args.index("--") if "--" in args else len(args)
    options, command = args[:split], args[split + 1 :]
    # The image's HEALTHCHECK, checked every second instead of every 10 s, to wait less.
    cid = docker("run", "-d", "--network", "host", "--health-interval", "1s", *options,
                 image, *command)  # fmt: skip
    try:
        yield Container(cid)
    finally:
        docker("rm", "-f", cid, check=False)


def compose_command() -> list[str] | None:
    """Compose v2 (``docker compose``) where the CLI has it, else Debian's docker-compose."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def build_stack() -> str:
    """``bash scripts/image --stack``: the image and compose.debian.yaml's PostgreSQL/Redis."""
    return build_image("--stack")
