"""The container image: its size, and how soon a started container serves.

Run: python3 bench/image.py [--rounds 7] (after `bash scripts/image`; needs a running
Docker engine). Each round starts, alternately, the image (`docker run --network host`
with a mounted routes.yaml) and the same `strangler serve` as a process on the host, and
times launch -> first 200 from the admin listener's /healthz, polled every 10 ms. The
host process is the baseline: the difference is what the container adds. Prints the
image size and, per side, the median, min and max over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.net import free_port  # noqa: E402

IMAGE = "strangler:local"
ROUTES = """\
version: 1
listen: 127.0.0.1:{port}
admin: {{listen: "127.0.0.1:{admin_port}"}}
legacy: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:9"}}
routes: []
"""


def _ready(url: str, started: float, timeout: float = 30) -> float:
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(url)


def _container(config: Path, admin_port: int) -> float:
    started = time.monotonic()
    cid = subprocess.run(
        ["docker", "run", "-d", "--network", "host",
         "-v", f"{config}:/etc/strangler/routes.yaml:ro", IMAGE],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        return _ready(f"http://127.0.0.1:{admin_port}/healthz", started)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def _process(config: Path, admin_port: int) -> float:
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "strangler", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        return _ready(f"http://127.0.0.1:{admin_port}/healthz", started)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", IMAGE],
                              capture_output=True, text=True, check=True).stdout)  # fmt: skip
    times: dict[str, list[float]] = {"container": [], "host process": []}
    with tempfile.TemporaryDirectory() as folder:
        for n in range(args.rounds * 2):
            config = Path(folder) / f"routes-{n}.yaml"
            admin_port = free_port()
            config.write_text(ROUTES.format(port=free_port(), admin_port=admin_port))
            config.chmod(0o644)
            if n % 2 == 0:
                times["container"].append(_container(config, admin_port))
            else:
                times["host process"].append(_process(config, admin_port))
    print(f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"image {IMAGE}: {size / 1e6:.0f} MB")
    for side, values in times.items():
        print(f"{side:>13}: launch -> /healthz median {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} rounds)")  # fmt: skip
    extra = statistics.median(times["container"]) - statistics.median(times["host process"])
    print(f"the container adds {extra:+.2f} s (medians)")


if __name__ == "__main__":
    main()
