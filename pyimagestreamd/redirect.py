"""Plain-HTTP redirect: the optional listener that sends every request to HTTPS, nothing else.

With `server.tls.redirect_from` set, the server (server.py) also listens on that port
without TLS and hands its connections this handler instead of the router. Each
connection is an ordinary `Connection` (httpd.py), so it is bounded like any other: the
per-address limits, the request-head size and time limits, the output bounds. Every
request passes the same front door as on the HTTPS port (two Host headers: 400, a Host
that is not ours: 421, routes.py), then gets `301 Moved Permanently` (GET, HEAD) or
`308 Permanent Redirect` (other methods, which must not turn into GET) to the same path
and query on `https://HOST[:public_port]`, and the connection closes. No page, stream or
credential is ever served or read here. Event-loop thread only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h11

from pyimagestreamd import access
from pyimagestreamd.httpd import Connection
from pyimagestreamd.static import text_reply

if TYPE_CHECKING:
    from pyimagestreamd.server import StreamServer

HTTPS_PORT = 443


class Redirect:
    """Answers the requests of the plain-HTTP listener (a `Handler`, routes.py)."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server

    async def handle(self, conn: Connection, h: h11.Connection, request: h11.Request) -> bool:
        """Send the redirect; False: the connection always closes after it."""
        router = self.server.router
        headers = router.front_door(conn, h, request)
        if headers is None:
            return False
        location = self.location(headers["host"], request.target.decode("ascii", "replace"))
        method = request.method
        status = 301 if method in (b"GET", b"HEAD") else 308
        reply = text_reply(status, f"moved to {location}", ("Location", location))
        router.reply(conn, h, reply, head=method == b"HEAD", close=True)
        return False

    def location(self, host: str, target: str) -> str:
        """The https URL for a request to `host` (already checked as ours) and `target`."""
        split = access.split_host(host)
        assert split is not None  # front_door accepted it
        name = f"[{split[0]}]" if ":" in split[0] else split[0]
        srv = self.server.config.server
        port = srv.tls_public_port or self.server.port
        authority = name if port == HTTPS_PORT else f"{name}:{port}"
        # An absolute-form target ("GET http://cam/x"): only its path and query count.
        parts = urlsplit(target)
        path = parts.path if parts.path.startswith("/") else "/"
        query = f"?{parts.query}" if parts.query else ""
        return f"https://{authority}{path}{query}"
