"""Raw-socket HTTP for the cases a well-behaved client library refuses to send."""

from __future__ import annotations

import asyncio


async def send_raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` as is and return everything the proxy answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        while True:
            try:
                part = await asyncio.wait_for(reader.read(65536), timeout)
            except (ConnectionResetError, TimeoutError):
                break
            if not part:
                break
            chunks.append(part)
        return b"".join(chunks)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0
