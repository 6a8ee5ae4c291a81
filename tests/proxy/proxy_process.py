"""Run the real proxy in its own process (for memory measurements): ``python -m
tests.proxy.proxy_process CONFIG_JSON`` prints the port it listens on, then serves."""

from __future__ import annotations

import asyncio
import json
import sys

from strangler.config import parse_config
from strangler.proxy.server import ProxyServer, bind
from strangler.routing.router import Router
from strangler.runtime import Runtime


async def main(config: str) -> None:
    server = ProxyServer(Runtime(Router(parse_config(json.loads(config)))))
    await server.start(bind("127.0.0.1", 0))
    print(server.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
