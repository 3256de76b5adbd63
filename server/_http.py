"""Streamable HTTP: loopback by default, a bearer token anywhere else, Origin checked,
request bodies bounded.

    CONTEXT_DISTILL_HTTP_TOKEN            bearer token; required to bind a non-loopback
                                          address, and enforced whenever it is set
    CONTEXT_DISTILL_HTTP_MAX_BODY_BYTES   largest request body accepted (default 8 MiB; 413 above)
    CONTEXT_DISTILL_HTTP_ALLOWED_ORIGINS  extra allowed Origin values, comma-separated
                                          (loopback origins are always allowed on a loopback bind)
    CONTEXT_DISTILL_HTTP_ALLOWED_HOSTS    extra allowed Host values, comma-separated
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HttpConfig", "SecureHTTP", "build_http_app", "is_loopback"]

log = logging.getLogger("context_distill.server")

TOKEN_ENV = "CONTEXT_DISTILL_HTTP_TOKEN"
MAX_BODY_ENV = "CONTEXT_DISTILL_HTTP_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 8 * 1024 * 1024

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _csv_env(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


class ConfigError(Exception):
    """The HTTP server must not start with this configuration."""


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    stateless: bool = False
    json_response: bool = False
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, *, host: str, port: int, path: str, stateless: bool, json_response: bool = False) -> HttpConfig:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
        raw = os.environ.get(MAX_BODY_ENV, "").strip()
        try:
            max_body = int(raw) if raw else DEFAULT_MAX_BODY
        except ValueError:
            raise ConfigError(f"{MAX_BODY_ENV}={raw!r} is not a whole number") from None
        if max_body < 1024:
            raise ConfigError(f"{MAX_BODY_ENV}={raw!r} is too small (at least 1024)")
        if not path.startswith("/"):
            path = "/" + path
        cfg = cls(
            host=host,
            port=port,
            path=path,
            stateless=stateless,
            json_response=json_response,
            token=token,
            max_body_bytes=max_body,
            allowed_origins=tuple(_csv_env("CONTEXT_DISTILL_HTTP_ALLOWED_ORIGINS")),
            allowed_hosts=tuple(_csv_env("CONTEXT_DISTILL_HTTP_ALLOWED_HOSTS")),
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to serve HTTP on {self.host}, which is not a loopback address, without a bearer token: "
                f"set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), or bind 127.0.0.1"
            )
        if self.token is not None and len(self.token) < 16:
            raise ConfigError(f"{TOKEN_ENV} is too short; use at least 16 random characters")

    def transport_security(self) -> TransportSecuritySettings:
        """DNS-rebinding protection through the SDK: Host and Origin must be ours."""
        h = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        if is_loopback(self.host):
            hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
            origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
            if h not in hosts:  # another loopback address (127.0.0.2, ...): the one bound
                hosts += [f"{h}:*", h]
                origins.append(f"http://{h}:*")
        else:
            hosts = [f"{h}:*", h]
            origins = []
        hosts += list(self.allowed_hosts)
        origins += list(self.allowed_origins)
        wildcard = self.host in ("0.0.0.0", "::", "[::]")
        return TransportSecuritySettings(
            # On a wildcard bind the Host header is whatever name reaches the machine; the token
            # guards it then. Host is still checked when the operator lists allowed hosts.
            enable_dns_rebinding_protection=not wildcard or bool(self.allowed_hosts),
            allowed_hosts=hosts,
            allowed_origins=origins,
        )

    def origin_allowed(self, origin: str) -> bool:
        ts = self.transport_security()
        for allowed in ts.allowed_origins:
            if origin == allowed:
                return True
            if allowed.endswith(":*") and origin.startswith(allowed[:-2] + ":"):
                port = origin[len(allowed) - 1 :]
                if port.isascii() and port.isdigit() and len(port) <= 5:  # not "localhost:80.evil.com"
                    return True
        return False


    def host_allowed(self, host: str) -> bool:
        """Host header check with a numeric port (the SDK's ``name:*`` wildcard also matches
        ``localhost:80.evil.example``); only where DNS-rebinding protection is on."""
        ts = self.transport_security()
        if not ts.enable_dns_rebinding_protection:
            return True
        for allowed in ts.allowed_hosts:
            if host == allowed:
                return True
            if allowed.endswith(":*") and host.startswith(allowed[:-2] + ":"):
                port = host[len(allowed) - 1 :]
                if port.isascii() and port.isdigit() and len(port) <= 5:
                    return True
        return False


class SecureHTTP:
    """ASGI wrapper: bearer token (401), Origin (403), body size (413) before the MCP app."""

    def __init__(self, app: ASGIApp, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        self._expected = f"Bearer {config.token}".encode() if config.token else None

    async def _reject(self, send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
        body = message.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        origin = headers.get(b"origin")
        # Origin first: a browser page must never learn anything, not even that a token is needed.
        if origin is not None and not self.config.origin_allowed(origin.decode("latin-1")):
            log.warning("rejected request from Origin %r", origin.decode("latin-1"))
            await self._reject(send, 403, "Forbidden: Origin not allowed")
            return
        host = headers.get(b"host")
        if host is not None and not self.config.host_allowed(host.decode("latin-1")):
            log.warning("rejected request for Host %r", host.decode("latin-1"))
            await self._reject(send, 421, "Misdirected Request: Host not allowed")
            return
        if self._expected is not None:
            got = headers.get(b"authorization", b"")
            if not hmac.compare_digest(got, self._expected):
                await self._reject(
                    send, 401, "Unauthorized: send 'Authorization: Bearer <token>'", [(b"www-authenticate", b"Bearer")]
                )
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.config.max_body_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(send, 413, f"Request body too large (limit {self.config.max_body_bytes} bytes)")
                return
        await self.app(scope, receive, send)


def build_http_app(mcp: Any, config: HttpConfig) -> ASGIApp:
    """The Starlette app from the SDK (session manager, Host/Origin checks, body limit), wrapped."""
    app = mcp.streamable_http_app(
        streamable_http_path=config.path,
        json_response=config.json_response,
        stateless_http=config.stateless,
        max_request_body_size=config.max_body_bytes,
        transport_security=config.transport_security(),
        host=config.host,
    )
    return SecureHTTP(app, config)
