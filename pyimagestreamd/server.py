"""Server: the one port every client talks to — listening sockets, accepting, shutdown.

The front door of the data flow. It binds the listening socket(s) (listeners.py: `listen:
"::"` is dual-stack, one IPv6 socket with IPV6_V6ONLY cleared also takes IPv4) and runs an
accept loop on each (admission.py: per-address limits before any byte is read, the TLS
handshake, then an HTTP `Connection`, httpd.py, whose requests the `Router`, routes.py,
answers), and shuts all of it down in order.

It also holds what the handlers share: the config, the camera runners, the statistics (and
`refused`, the one way a refusal is counted and logged) and the registry of streaming
clients (for `max_clients` and shutdown). Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from pyimagestreamd.admission import Admission
from pyimagestreamd.config import Config
from pyimagestreamd.httpd import Connection
from pyimagestreamd.listeners import bind, listening_text
from pyimagestreamd.metrics import make_registry
from pyimagestreamd.ratelimit import RateLimitedLog
from pyimagestreamd.redirect import Redirect
from pyimagestreamd.routes import Router
from pyimagestreamd.runner import CameraRunner
from pyimagestreamd.stats import ServerStats
from pyimagestreamd.tls import ServerTLS
from pyimagestreamd.websocket import CLOSE_GOING_AWAY, CLOSE_UNKNOWN_CAMERA
from pyimagestreamd.wsconn import WebSocket

log = logging.getLogger(__name__)

# How the daemon starts a task it supervises: a name for the log, and the coroutine.
Spawn = Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[None]"]

# How long shutdown waits for clients to finish their closing handshake before dropping them.
CLOSE_TIMEOUT = 3.0


class StreamServer:
    """The listening sockets and every connection they accepted."""

    def __init__(self, config: Config, runners: Mapping[str, CameraRunner], web_root: Path) -> None:
        self.config = config
        self.runners = runners
        self.web_root = web_root
        self.stats = ServerStats()
        self.warnings = RateLimitedLog(log)
        # Unexpected errors (ours or websockets'): logged at ERROR, rate-limited.
        self.errors = RateLimitedLog(log)
        # Turning TLS on or off takes a restart; the pair itself is re-read on reload.
        self.tls: ServerTLS | None = None
        self.router = Router(self)
        self._revalidator: asyncio.Task[None] | None = None
        self.metrics_registry = make_registry(self)
        self.connections: set[Connection] = set()
        # Streaming clients (WebSocket and MJPEG) and the camera each watches.
        self.clients: dict[Connection, str] = {}
        self.websockets: dict[Connection, WebSocket] = {}
        # Who gets in, and each accepted socket made a Connection (admission.py).
        self.admission = Admission(self)
        self._sockets: list[socket.socket] = []
        # The plain-HTTP listener that only redirects to HTTPS (server.tls.redirect_from).
        self._redirect_sockets: list[socket.socket] = []
        self.redirect = Redirect(self)
        self._accepting: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Future[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, spawn: Spawn | None = None) -> None:
        """Bind the listening socket(s) and start accepting; returns when clients can connect.

        The accept loops and the access revalidator run for the life of the server: `spawn`
        (the daemon's supervisor) starts them, so that one ending unexpectedly ends the
        process instead of leaving a daemon that no longer accepts anyone.
        """
        start = spawn or (lambda _name, coro: asyncio.ensure_future(coro))
        srv = self.config.server
        if srv.tls_certificate is not None and srv.tls_key is not None:
            self.tls = ServerTLS(srv.tls_certificate, srv.tls_key)
        self._sockets = bind(srv.listen, srv.port)
        if self.tls is not None and srv.tls_redirect_from is not None:
            try:
                self._redirect_sockets = bind(srv.listen, srv.tls_redirect_from)
            except BaseException:
                for sock in self._sockets:
                    sock.close()
                raise
        self._revalidator = start(
            "server access revalidation", self.router.streams.revalidate_forever()
        )
        for sock in self._sockets:
            where = sock.getsockname()[0]
            accept = self.admission.accept(sock, self.router, secure=self.tls is not None)
            self._accepting.append(start(f"server accept on {where}", accept))
        for sock in self._redirect_sockets:
            where = sock.getsockname()[0]
            accept = self.admission.accept(sock, self.redirect, secure=False)
            self._accepting.append(start(f"server redirect accept on {where}", accept))
        log.info("%s", listening_text(self._sockets))
        if self._redirect_sockets:
            log.info("redirecting plain HTTP on port %d to HTTPS", self.redirect_port)

    @property
    def addresses(self) -> list[str]:
        return [s.getsockname()[0] for s in self._sockets]

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    @property
    def redirect_port(self) -> int | None:
        """The plain-HTTP redirect listener's port, or None without one."""
        if not self._redirect_sockets:
            return None
        return int(self._redirect_sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, close WebSockets with 1001 and streams, wait (bounded), drop the rest."""
        for task in self._accepting:
            task.cancel()
        if self._revalidator is not None:
            self._revalidator.cancel()
        for sock in (*self._sockets, *self._redirect_sockets):
            sock.close()
        handshakes = self.admission.cancel_handshakes()
        closing = [
            asyncio.ensure_future(ws.close(CLOSE_GOING_AWAY, "server shutting down"))
            for ws in list(self.websockets.values())
        ]
        for conn in list(self.connections):
            if conn not in self.websockets:
                conn.close()
        tasks = [c.task for c in self.connections if c.task is not None]
        tasks += handshakes
        if tasks or closing:
            await asyncio.wait([*tasks, *closing], timeout=CLOSE_TIMEOUT)
        self.abort_all()
        if self._accepting:
            # wait(), not await: a loop that failed has been reported by its supervisor.
            await asyncio.wait(self._accepting)

    def abort_all(self) -> None:
        """Drop every connection still open (a client that ignores the closing handshake)."""
        for conn in list(self.connections):
            conn.abort("shutdown")

    def set_config(self, config: Config) -> None:
        """Take a reloaded configuration (origins, limits); the listening socket stays."""
        self.config = config
        self.router.gate.trusted_proxies = config.server.trusted_proxies
        srv = config.server
        if self.tls is not None and srv.tls_certificate is not None and srv.tls_key is not None:
            self.tls.reload(srv.tls_certificate, srv.tls_key)

    def refused(self, peer: str, reason: str, why: str) -> None:
        """Count a connection refused for `reason` (stats.py) and log it in one DEBUG line.

        Every refusal comes through here, so that a churn of refused clients writes no more
        than one line each, and only at DEBUG: `why` says what was wrong in words of ours,
        never the request's bytes (a header may carry a password, a cookie or a token).
        What an operator must hear of is also warned about, rate-limited, by the caller.
        """
        self.stats.refused(reason)
        log.debug("client %s: refused (%s): %s", peer, reason, why[:200])

    def close_later(self, closing: Coroutine[Any, Any, None]) -> None:
        """Run a WebSocket close in the background, tracked until it ends."""
        task = asyncio.ensure_future(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def disconnect_camera(self, name: str) -> None:
        """Close the connections of a camera that a reload removed."""
        for conn, camera in list(self.clients.items()):
            if camera != name:
                continue
            ws = self.websockets.get(conn)
            if ws is not None:
                task = asyncio.ensure_future(
                    ws.close(CLOSE_UNKNOWN_CAMERA, f"camera {name} was removed")
                )
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            else:
                conn.close()

    def pending_changed(self, conn: Connection, pending: bool) -> None:
        """A connection started (True) or finished (False) sending a request head."""
        self.admission.pending_changed(conn, pending)

    def connection_done(self, conn: Connection) -> None:
        """A connection ended: out of the registries and the per-address counts."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self.clients.pop(conn, None)
        self.websockets.pop(conn, None)
        self.admission.forget(conn)
