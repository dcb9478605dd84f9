"""Admission: who gets in through the server's listening sockets, and how a socket is set up.

The accept loops of the front door (server.py starts one per listening socket, each a core
task of the daemon): an address that already holds its share (`max_clients_per_address`
open connections, `max_pending_per_address` still sending a request; `trusted_proxies`
are exempt) is refused before any byte is read; every other socket becomes an HTTP
`Connection` (httpd.py), over TLS once its handshake is done, in a task of its own so that
a slow or silent client holds up nobody else. If the process runs out of file descriptors,
accepting pauses briefly and one rate-limited line says so. The per-address counts live
here; the server tells them when a connection ends. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import ssl
from typing import TYPE_CHECKING

from pyimagestreamd import pacing
from pyimagestreamd.httpd import Connection

if TYPE_CHECKING:
    from pyimagestreamd.routes import Handler
    from pyimagestreamd.server import StreamServer

# After an accept error for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): wait this
# long before the next accept, so slow connections can time out and free descriptors.
ACCEPT_PAUSE = 0.5
RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Admission:
    """The accept loops of one server, with its per-address counts."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        # Open connections, and those still sending a request head, by client address.
        self.per_address: collections.Counter[str] = collections.Counter()
        self.pending: collections.Counter[str] = collections.Counter()
        # TLS handshakes under way, each in its task (bounded by request_timeout).
        self.handshakes: set[asyncio.Task[None]] = set()

    async def accept(self, listener: socket.socket, handler: Handler, secure: bool) -> None:
        """Accept on `listener` until cancelled (a core task of the daemon, one per socket)."""
        server = self.server
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, addr = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # the client gave up before we got to it
                server.stats.refused("accept_error")
                server.warnings.error(
                    f"accept:{exc.errno}",
                    "cannot accept connections: %s; pausing for %g s",
                    exc.strerror or exc,
                    ACCEPT_PAUSE,
                )
                await asyncio.sleep(ACCEPT_PAUSE)
                continue
            try:
                await self._admit(sock, addr, handler, secure)
            except OSError as exc:
                sock.close()
                server.warnings.warning("admit", "cannot set up a connection: %s", exc)

    async def _admit(
        self,
        sock: socket.socket,
        addr: tuple[str, int] | tuple[str, int, int, int],
        handler: Handler,
        secure: bool,
    ) -> None:
        host = str(addr[0])
        if host.startswith("::ffff:") and "." in host:
            host = host[len("::ffff:") :]  # IPv4 through the dual-stack socket
        server = self.server
        srv = server.config.server
        if host not in srv.trusted_proxies and (
            self.per_address[host] >= srv.max_clients_per_address
            or self.pending[host] >= srv.max_pending_per_address
        ):
            server.refused(host, "per_address", f"it holds {self.per_address[host]} connections")
            server.warnings.warning(
                "per_address",
                "refused a connection from %s: it holds %d connections"
                " (server.max_clients_per_address %d, max_pending_per_address %d)",
                host,
                self.per_address[host],
                srv.max_clients_per_address,
                srv.max_pending_per_address,
            )
            sock.close()
            return
        pacing.configure(sock)
        conn = Connection(server, host, handler, secure)
        server.connections.add(conn)
        self.per_address[host] += 1
        self.pending[host] += 1
        server.stats.connected()
        if secure and server.tls is not None:
            # The TLS handshake runs in a task of its own: awaited here, it held up the
            # accept loop, so that one client sending nothing kept everyone else out for
            # request_timeout (the handshake's bound).
            task = asyncio.ensure_future(self._handshake(conn, sock, server.tls.context))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)
            return
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, sock)
        except BaseException:
            self.server.connection_done(conn)
            raise

    async def _handshake(
        self, conn: Connection, sock: socket.socket, context: ssl.SSLContext
    ) -> None:
        """Set up a TLS connection; a failed or late handshake is a refusal (counted, logged)."""
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: conn,
                sock,
                ssl=context,
                ssl_handshake_timeout=self.server.config.server.request_timeout,
            )
        except OSError as exc:
            # Plain HTTP on the TLS port, a client that does not trust us, or silence:
            # asyncio aborts a handshake that takes longer than its timeout.
            self.server.connection_done(conn)
            sock.close()
            late = isinstance(exc, TimeoutError | ConnectionAbortedError)
            self.server.refused(conn.peer, "timeout" if late else "protocol_error", f"TLS: {exc}")
            self.server.warnings.warning(
                "tls-handshake", "refused a connection from %s: TLS: %s", conn.peer, exc
            )
        except BaseException:
            self.server.connection_done(conn)
            sock.close()
            raise

    def cancel_handshakes(self) -> list[asyncio.Task[None]]:
        """Shutdown: cancel the TLS handshakes under way; the tasks, to wait for."""
        tasks = list(self.handshakes)
        for task in tasks:
            task.cancel()
        return tasks

    def pending_changed(self, conn: Connection, pending: bool) -> None:
        self.pending[conn.peer] += 1 if pending else -1
        if self.pending[conn.peer] <= 0:
            del self.pending[conn.peer]

    def forget(self, conn: Connection) -> None:
        """Take an ended connection out of the per-address counts."""
        for table, counted in ((self.per_address, True), (self.pending, conn.is_pending)):
            if counted:
                table[conn.peer] -= 1
                if table[conn.peer] <= 0:
                    del table[conn.peer]
