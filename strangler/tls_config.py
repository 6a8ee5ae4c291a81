"""The ``tls:`` keys of routes.yaml: the public listener's certificate and how an
``https://`` upstream is reached (CA bundle, client certificate, SNI). Models only;
:mod:`strangler.tls` builds the SSL contexts from them."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo, field_validator, model_validator

from strangler.schema import Section as _Model

__all__ = ["TlsConfig", "UpstreamTlsConfig"]


class UpstreamTlsConfig(_Model):
    """How an ``https://`` upstream is reached. Paths are PEM files, relative to
    routes.yaml's folder (made absolute when the file is loaded)."""

    ca: str | None = None
    """CA bundle to verify the upstream's certificate with, instead of the system's."""
    cert: str | None = None
    """Client certificate (mTLS), leaf first; ``key`` unless the key is in this file."""
    key: str | None = None
    server_name: str | None = None
    """SNI and the name the certificate must carry (default: the url's host)."""
    verify: bool = True
    """False: accept any certificate (never in production)."""

    @field_validator("ca", "cert", "key")
    @classmethod
    def _path(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base_dir")
        if value is None or base is None:
            return value
        return str(Path(base) / value)

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTlsConfig:
        if self.key is not None and self.cert is None:
            raise ValueError("key: needs cert (the client certificate the key goes with)")
        return self


class TlsConfig(_Model):
    """TLS on the public listener: PEM files, relative to routes.yaml's folder."""

    cert: str
    """The certificate chain (leaf first)."""
    key: str
