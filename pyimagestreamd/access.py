"""Access checks on a request head: is the Host one of ours, is the Origin the page's own.

The first step after parsing, for every route (HTTP and WebSocket), before anything is read
from a hub. The Host allow-list defeats DNS rebinding: a page on evil.example whose name
now resolves to this machine sends `Host: evil.example`, which is not an IP literal,
`localhost`, this machine's own name, `NAME.local` or a configured `server.allowed_hosts`
entry, so it is refused before it can see a frame. The Origin check protects browsers'
users on WebSocket routes: a page may open a WebSocket to us only if its origin (scheme,
host and port) is the one the request was sent to, or is listed in `allowed_origins`.

Pure functions of the header values and the config: no I/O, unit-tested without sockets.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from pyimagestreamd.addresses import is_ip_literal


def local_names() -> frozenset[str]:
    """This machine's own names: localhost, the hostname, its short form and NAME.local."""
    names = {"localhost", "localhost.localdomain"}
    host = socket.gethostname().lower().rstrip(".")
    if host:
        short = host.split(".")[0]
        names.update({host, short, f"{short}.local"})
    return frozenset(names)


def split_host(host: str) -> tuple[str, int | None] | None:
    """`Host` header value -> (lower-case name or IP literal without brackets, port)."""
    host = host.strip()
    if not host or any(c in host for c in "/@?#\\ \t"):
        return None
    port_text = ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
    elif host.count(":") == 1:
        name, port_text = host.split(":")
    elif ":" in host:
        return None  # an IPv6 literal without brackets is not a valid Host
    else:
        name = host
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            return None
        port = int(port_text)
    return name.lower().rstrip("."), port


def host_allowed(host: str | None, allowed: Iterable[str], names: frozenset[str]) -> bool:
    """True if `host` (the Host header) names this server: IP literal, own name or allowed."""
    if host is None:
        return False
    parts = split_host(host)
    if parts is None:
        return False
    name = parts[0]
    return is_ip_literal(name) or name in names or name in allowed


def origin_allowed(
    origin: str | None, host: str | None, secure: bool, allowed_origins: Iterable[str]
) -> bool:
    """True if a WebSocket from a page of `origin` may talk to us at `host`.

    No Origin header: not a browser (origin checks protect browsers' users only). An
    allow-listed origin is accepted as written. Otherwise the page must be the server's
    own: same host and port, and a scheme matching the connection (http for ws, https for
    wss); `null`, `file://` and anything else are refused.
    """
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    if origin in allowed_origins:
        return True
    parts = urlsplit(origin)
    want = "https" if secure else "http"
    if parts.scheme != want or not parts.netloc or host is None:
        return False
    try:
        origin_port = parts.port
    except ValueError:
        return False
    own = split_host(host)
    mine = split_host(parts.netloc)
    if own is None or mine is None:
        return False
    default = 443 if secure else 80
    return mine[0] == own[0] and (origin_port or default) == (own[1] or default)
