"""Cost of counting one proxied request: strangler.metrics vs prometheus-client objects.

Run: python3 bench/metrics_cost.py. Prints CPU microseconds per request for
``Metrics.listener`` (a counter and a histogram observation, as the data plane
records them) and for the same two updates through prometheus-client metric
objects, in its default mode and in its multiprocess mode (which needs
``PROMETHEUS_MULTIPROC_DIR`` set before it is imported, so that one runs in a
child process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

N = 200_000
ROUNDS = 7

PROMETHEUS = f"""
import time
from prometheus_client import CollectorRegistry, Counter, Histogram
registry = CollectorRegistry()
requests = Counter("r", "r", ["route", "upstream", "code"], registry=registry)
durations = Histogram("d", "d", ["route", "upstream"], registry=registry)
best = float("inf")
for _ in range({ROUNDS}):
    start = time.process_time()
    for _ in range({N}):
        requests.labels("customers", "customers", "200").inc()
        durations.labels("customers", "customers").observe(0.0012)
    best = min(best, (time.process_time() - start) / {N} * 1e6)
print(f"{{best:.2f}}")
"""


def ours() -> float:
    from strangler.metrics import Metrics
    from strangler.runtime import RequestRecord

    metrics = Metrics()
    record = RequestRecord("customers", "customers", 200, 0.0012, True)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(N):
            metrics.listener(record)
        best = min(best, (time.process_time() - start) / N * 1e6)
    return best


def theirs(multiprocess: bool) -> str:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as spool:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = spool
        out = subprocess.run(
            [sys.executable, "-c", PROMETHEUS], env=env, capture_output=True, text=True, check=True
        )
    return out.stdout.strip()


def main() -> None:
    print(f"{'counting one request':<42} {'CPU us':>7}")
    print(f"{'strangler.metrics (Metrics.listener)':<42} {ours():>7.2f}")
    print(f"{'prometheus-client objects':<42} {theirs(False):>7}")
    print(f"{'prometheus-client objects, multiprocess':<42} {theirs(True):>7}")


if __name__ == "__main__":
    main()
