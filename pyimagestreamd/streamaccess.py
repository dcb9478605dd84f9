"""Stream access: open streams are cut off when the access that opened them ends.

A WebSocket or MJPEG stream passes the access check (gate.py) once, when it is opened;
the router (routes.py) remembers who opened it here. `revalidate` closes every stream
whose principal is no longer valid: at once after a logout or a revoked share link
(authapi.py calls it), and every REVALIDATE_INTERVAL for what no request announces (the
command line revoking a link, a link or session expiring, a user deleted from the users
file); a WebSocket is closed with 1008, an MJPEG stream dropped. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyimagestreamd.gate import Gate, Principal
    from pyimagestreamd.httpd import Connection
    from pyimagestreamd.server import StreamServer

# How often open streams are re-checked against logouts, revoked and expired share links.
REVALIDATE_INTERVAL = 1.0
CLOSE_POLICY = 1008


class StreamAccess:
    """Who opened each open stream, and the check that cuts it off once that has ended."""

    def __init__(self, server: StreamServer, gate: Gate) -> None:
        self.server = server
        self.gate = gate
        # Who opened each stream (WebSocket, MJPEG), for cutting it off when that ends.
        self.principals: weakref.WeakKeyDictionary[Connection, Principal] = (
            weakref.WeakKeyDictionary()
        )

    def opened(self, conn: Connection, principal: Principal) -> None:
        """Remember that `principal` opens a stream on `conn`."""
        self.principals[conn] = principal

    def revalidate(self) -> None:
        """Cut off every stream whose session ended or whose share link went (1008)."""
        for conn, principal in list(self.principals.items()):
            if conn not in self.server.clients or self.gate.is_valid(principal):
                continue
            self.principals.pop(conn, None)
            ws = self.server.websockets.get(conn)
            if ws is not None:
                self.server.close_later(ws.close(CLOSE_POLICY, "access ended"))
            else:
                conn.close()

    async def revalidate_forever(self) -> None:
        # Catches what no request announces: the command line revoking a link, a link or a
        # session expiring, a user deleted from the users file.
        while True:
            await asyncio.sleep(REVALIDATE_INTERVAL)
            if self.principals:
                self.revalidate()
