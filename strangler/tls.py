"""TLS on the public listener (one server context, its certificate reloaded in
place) and the client contexts of ``https://`` upstreams.

``tls: {cert, key}`` in routes.yaml makes ``strangler serve`` terminate TLS on
``listen``. :class:`ListenerTls` holds the :class:`ssl.SSLContext` the listener
was started with and reloads the certificate chain *into that same context*
when the files change (checked once a second) or on SIGHUP: handshakes from
then on present the new certificate, connections already open keep theirs, so
a renewal drops nothing. A pair that does not load (half-written, key not
matching) is logged and the previous one keeps serving; at start it is an
error naming the file.

:func:`upstream_context` builds the context an upstream pool connects with from
the upstream's ``tls:`` keys: a CA bundle instead of the system's, a client
certificate (mTLS), or no verification at all. SNI and the checked host name are
:func:`upstream_server_name`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from strangler.errors import StranglerError
from strangler.tasks import stop_task
from strangler.tls_config import TlsConfig, UpstreamTlsConfig

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0
"""Seconds between looks at the certificate and key files."""


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class ListenerTls:
    """The public listener's server context and the files it is loaded from."""

    def __init__(self, config: TlsConfig, base_dir: Path | None = None) -> None:
        base = base_dir or Path.cwd()
        self.cert = base / config.cert
        self.key = base / config.key
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._stamps = self._read_stamps()
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise StranglerError(
                f"tls: cannot load the certificate {self.cert} with the key {self.key}: {exc}"
            ) from exc
        self._task: asyncio.Task[None] | None = None

    def _read_stamps(self) -> tuple[tuple[int, int] | None, ...]:
        return (_stamp(self.cert), _stamp(self.key))

    def reload(self) -> bool:
        """Load the files again into the live context; False (old pair kept) if they fail."""
        self._stamps = self._read_stamps()
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            log.error(
                "tls: %s / %s not loaded (%s); still serving the previous certificate",
                self.cert,
                self.key,
                exc,
            )
            return False
        log.info("tls: certificate %s loaded", self.cert)
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="strangler-tls-watch")

    async def stop(self, grace: float = 0.0) -> None:
        await stop_task(self._task)
        self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            if self._read_stamps() != self._stamps:
                # A renewal writes two files: wait a moment so both are in place.
                await asyncio.sleep(CHECK_EVERY / 2)
                self.reload()


def upstream_context(config: UpstreamTlsConfig | None) -> ssl.SSLContext:
    """The client context for an ``https://`` upstream. Raises StranglerError naming
    the file that does not load."""
    config = config or UpstreamTlsConfig()
    try:
        context = ssl.create_default_context(cafile=config.ca)
    except (OSError, ssl.SSLError) as exc:
        raise StranglerError(f"tls.ca: cannot load the CA bundle {config.ca}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert is not None:
        try:
            context.load_cert_chain(config.cert, config.key)
        except (OSError, ssl.SSLError) as exc:
            raise StranglerError(
                f"tls.cert: cannot load the client certificate {config.cert}"
                f"{f' with the key {config.key}' if config.key else ''}: {exc}"
            ) from exc
    return context


def upstream_server_name(config: UpstreamTlsConfig | None, host: str) -> str:
    """The name sent as SNI and checked against the certificate: ``server_name`` or
    the url's host. (Python sends no SNI for an IP address, but still checks it.)"""
    if config is not None and config.server_name:
        return config.server_name
    return host
