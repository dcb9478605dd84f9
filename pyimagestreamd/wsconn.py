"""WebSocket connection: websockets' sans-I/O protocol driven by our own small I/O loop.

After the router accepted an upgrade request, the HTTP connection hands its socket over to a
`WebSocket`: the request head h11 parsed is re-serialized into websockets' `ServerProtocol`,
which validates the handshake and answers it; from then on (the bytes that came behind the
request included) every received byte goes to the protocol, through the reader that takes
the clients' small messages in itself (wsreader.py), and every byte it wants to send goes
through the connection's one bounded write path (httpd.py). That is the whole reason for driving the
sans-I/O layer ourselves: websockets' asyncio server queues output (pongs to a ping flood,
frames to a reader that never reads) without a bound we could set, while here a connection
whose output passes MAX_PENDING_OUTPUT, or that takes nothing for `send_timeout`, is aborted.

Also here: keepalive pings with a timeout, and the closing handshake. The bytes in and out,
and input left in the kernel while a protocol-2 handler holds credits (`defer_input`), are
the lower half, wsio.py's WebSocketIO. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from pyimagestreamd.httpd import Connection
from pyimagestreamd.ratelimit import RateLimitedLog
from pyimagestreamd.wsframing import binary_header
from pyimagestreamd.wsio import MAX_MESSAGE_SIZE, WebSocketIO
from pyimagestreamd.wslog import WebsocketsLog

log = logging.getLogger(__name__)

SUBPROTOCOL = Subprotocol("pyimagestream.v2")
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0


def select_subprotocol(protocol: ServerProtocol, offered: list[Subprotocol]) -> Subprotocol | None:
    # Without our subprotocol the client speaks the original protocol: never refuse it.
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


class WebSocket(WebSocketIO):
    """One open WebSocket: receive messages, send messages, close, all bounded."""

    def __init__(self, conn: Connection, limiter: RateLimitedLog) -> None:
        super().__init__(
            conn,
            ServerProtocol(
                select_subprotocol=select_subprotocol,  # type: ignore[arg-type]
                max_size=MAX_MESSAGE_SIZE,
                logger=WebsocketsLog(limiter),
            ),
        )
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    # -- opening handshake -------------------------------------------------------------

    def handshake(
        self, path: str, headers: list[tuple[str, str]], rest: bytes, version: str
    ) -> Response:
        """Run the opening handshake for a request h11 parsed; return the response sent."""
        request = Request(path, Headers(headers), "GET", version)
        self.conn.take_over_input(self._receive, self._receive_eof)
        # The request alone: frames behind it go through the reader once the protocol is
        # OPEN, so that it and websockets agree where each frame starts.
        self.protocol.receive_data(request.serialize())
        events = self.protocol.events_received()
        if not events or not isinstance(events[0], Request):
            # websockets could not read back what h11 accepted (e.g. a non-ASCII path).
            response = self.protocol.reject(400, "invalid WebSocket request\n")
            self._add_security_headers(response)
            self.protocol.send_response(response)
            self._flush()
            return response
        response = self.protocol.accept(events[0])
        self._add_security_headers(response)
        self.protocol.send_response(response)
        self._flush()
        if response.status_code == 101:
            self._schedule_ping()
            # Frames that came right behind the handshake (rare, but allowed).
            self._receive(rest)
        return response

    def _add_security_headers(self, response: Response) -> None:
        # Refusals (400, 426) are pages a browser may show; the 101 gets them too, so that
        # no response of ours goes without.
        for name, value in self.conn.security_headers:
            response.headers[name] = value

    @property
    def subprotocol(self) -> Subprotocol | None:
        return self.protocol.subprotocol

    # -- keepalive ---------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(PING_INTERVAL, self._ping)

    def _ping(self) -> None:
        if self.protocol.state is not OPEN:
            return
        if self._ping_payload is not None:
            self.conn.abort("ping_timeout")  # the last ping went unanswered
            return
        self.take_input()  # so that the pong is read
        self._ping_payload = os.urandom(4)
        self.protocol.send_ping(self._ping_payload)
        self._flush()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(PING_TIMEOUT, self._ping)

    # -- application side ----------------------------------------------------------------

    def incoming(self) -> asyncio.Future[None]:
        """A future done when a message is waiting or the connection is closing or gone."""
        waiter = self._loop.create_future()
        if self.messages or not self.is_open:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    async def recv(self) -> str | bytes:
        """The next message; ConnectionClosed once the connection is closing or gone."""
        while not self.messages:
            if not self.is_open:
                if self.protocol.state is not CLOSED:
                    # The closing handshake is under way (our close frame went out, the
                    # peer's has not come): it ends by the close timer or the server's
                    # shutdown bound, and only then is there a close to report.
                    await self.wait_closed()
                if self.protocol.state is CLOSED:
                    raise self.protocol.close_exc
                raise ConnectionClosedError(self.protocol.close_rcvd, self.protocol.close_sent)
            await self.incoming()
        return self.messages.popleft()

    def send_text(self, text: str) -> None:
        if self.is_open:
            self.protocol.send_text(text.encode())
            self._flush()

    def send_binary(self, parts: Sequence[bytes]) -> int:
        """Send one binary message made of `parts`, without joining them; its size.

        Framed by us (wsframing.py), written only while the protocol is OPEN, in order with
        its own output (control frames: ping, pong, close).
        """
        size = sum(map(len, parts))
        if self.is_open:
            self.conn.writelines((binary_header(size), *parts))
        return size

    def send_framed(self, message: bytes) -> int:
        """Send a whole binary frame made by `binary_frame` (one copy shared by clients)."""
        if self.is_open:
            self.conn.write(message)
        return len(message)

    def send_framed_parts(self, head: bytes, payload: bytes) -> int:
        """Send one binary frame whose first part, `head`, starts with its `binary_header`
        (made with the rest of the head in one step: protocol 2's frames, v2wire.py); its
        size. Written in one writev, never joined, only while the protocol is OPEN."""
        if self.is_open:
            self.conn.writelines((head, payload))
        return len(head) + len(payload)

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake and wait (bounded) for the connection to end."""
        self.take_input()  # the client's close, or its end
        if self.protocol.state is OPEN:
            self.protocol.send_close(code, reason[:120])
            self._process()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self.conn.closed

    def finish(self) -> None:
        """Stop the keepalive pings (the handler is done; the close timer stays armed)."""
        if self._timer is not None:
            self._timer.cancel()


__all__ = ["MAX_MESSAGE_SIZE", "SUBPROTOCOL", "ConnectionClosed", "WebSocket"]
