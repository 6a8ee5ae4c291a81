"""One bare proxy worker for bench/proxy.py: ``ProxyServer`` + metrics on a shared port.

    python bench/proxy_worker.py routes.yaml PORT [--uvloop]

Binds PORT with SO_REUSEPORT (start several for several workers), counts
requests like ``strangler serve`` does, and serves until SIGTERM. It exists to
measure the data plane on uvloop side by side with ``strangler serve``.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from strangler.config import load_config
from strangler.metrics import Metrics
from strangler.proxy.server import ProxyServer, bind
from strangler.routing.router import Router
from strangler.runtime import Runtime


async def main(path: str, port: int) -> None:
    runtime = Runtime(Router(load_config(path)), listeners=(Metrics().listener,))
    server = ProxyServer(runtime)
    await server.start(bind("127.0.0.1", port, reuse_port=True))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.close(1.0)


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
