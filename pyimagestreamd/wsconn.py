"""WebSocket connection: websockets' sans-I/O protocol driven by our own small I/O loop.

After the router accepted an upgrade request, the HTTP connection hands its socket over to a
`WebSocket`: the request head h11 parsed is re-serialized into websockets' `ServerProtocol`
(plus any bytes that followed it), which validates the handshake and answers it; from then on
every received byte goes to the protocol, through the reader that takes the clients' small
messages in itself (wsreader.py), and every byte it wants to send goes through the
connection's one bounded write path (httpd.py). That is the whole reason for driving the
sans-I/O layer ourselves: websockets' asyncio server queues output (pongs to a ping flood,
frames to a reader that never reads) without a bound we could set, while here a connection
whose output passes MAX_PENDING_OUTPUT, or that takes nothing for `send_timeout`, is aborted.

Also here: keepalive pings with a timeout, and a bound on the closing handshake.
Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import struct
from collections.abc import Callable, Sequence

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from pyimagestreamd.httpd import Connection
from pyimagestreamd.ratelimit import RateLimitedLog
from pyimagestreamd.wsreader import MessageReader

log = logging.getLogger(__name__)

SUBPROTOCOL = Subprotocol("pyimagestream.v2")
# Clients only send tiny control messages: anything bigger is hostile or broken (1009).
MAX_MESSAGE_SIZE = 1024
# Messages received and not yet handled; more means the client does not wait for answers.
MAX_INBOX = 64
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0


def binary_header(size: int) -> bytes:
    """The header of one unfragmented, unmasked binary frame of `size` bytes (RFC 6455 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return struct.pack("!BBH", 0x82, 126, size)
    return struct.pack("!BBQ", 0x82, 127, size)


def binary_frame(payload: bytes) -> bytes:
    """One whole binary message frame: what `send_binary((payload,))` writes."""
    return binary_header(len(payload)) + payload


class _WebsocketsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' log lines for a connection: its errors (real bugs) at ERROR, rate-limited.

    Its INFO lines ("connection open", "connection rejected") are one per connection: the
    counters in /api/state say the same without flooding the journal.
    """

    def __init__(self, limiter: RateLimitedLog) -> None:
        super().__init__(logging.getLogger("websockets.server"), {})
        self.limiter = limiter

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return level >= logging.ERROR

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if level >= logging.ERROR:
            self.limiter.error(f"websockets:{msg}", f"websockets: {msg}", *args, **kwargs)


def select_subprotocol(protocol: ServerProtocol, offered: list[Subprotocol]) -> Subprotocol | None:
    # Without our subprotocol the client speaks the original protocol: never refuse it.
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


class WebSocket:
    """One open WebSocket: receive messages, send messages, close, all bounded."""

    def __init__(self, conn: Connection, limiter: RateLimitedLog) -> None:
        self.conn = conn
        self.protocol = ServerProtocol(
            select_subprotocol=select_subprotocol,  # type: ignore[arg-type]
            max_size=MAX_MESSAGE_SIZE,
            logger=_WebsocketsLog(limiter),
        )
        self.messages: collections.deque[str | bytes] = collections.deque()
        self.reader = MessageReader(
            self.protocol, MAX_MESSAGE_SIZE, self._on_message, self._on_control
        )
        self._waiter: asyncio.Future[None] | None = None
        self._ping_payload: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.overflowed = False
        self._loop = asyncio.get_running_loop()
        # Called with each message that completes while none is queued; True if it used
        # the message, which then is not queued and wakes no one (protocol 2's credits).
        self.take_message: Callable[[str | bytes], bool] | None = None
        self._queued = False

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

    # -- I/O loop: data in, events out, data to send ------------------------------------

    def _receive(self, data: bytes) -> None:
        self.reader.receive_data(data)
        self._process()

    def _receive_eof(self) -> None:
        self.reader.receive_eof()
        self._process()

    def _process(self) -> None:
        # The reader has called back with every message and control frame; what is left
        # is websockets' output (pongs, close frames) and the connection's state.
        self._flush()
        if self.protocol.close_expected() and self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, self.conn.abort, "close_timeout")
        # The reader waits for a message or the end: a pong or a message taken on arrival
        # is neither, and waking it for nothing is a turn of the loop per frame.
        if self._queued or self.protocol.state is not OPEN:
            self._queued = False
            self._wake()

    def _on_message(self, message: str | bytes) -> None:
        if not self.messages and self.take_message is not None and self.take_message(message):
            return
        self._queued = True
        if len(self.messages) >= MAX_INBOX:
            self.overflowed = True
            return
        self.messages.append(message)

    def _on_control(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PONG and frame.data == self._ping_payload:
            self._ping_payload = None

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.conn.write(data)
            else:
                # The protocol is done (close handshake complete or failed): the server
                # closes TCP first (RFC 6455 7.1.1).
                self.conn.write_eof()
                self.conn.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

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
        self._ping_payload = os.urandom(4)
        self.protocol.send_ping(self._ping_payload)
        self._flush()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(PING_TIMEOUT, self._ping)

    # -- application side ----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.protocol.state is OPEN and not self.conn.closed.done()

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

        Frames (up to 300 KB of JPEG each, to every client) are framed here, not by
        websockets, whose serializer copies each payload twice (into a BytesIO, then out of
        it). We offer no extension (no permessage-deflate), so an unfragmented binary
        message is `binary_header` and the payload as they are: the bytes on the wire are
        the same. Control frames (ping, pong, close) still go through the protocol, and
        frames are written only while it is OPEN, in order with its own output.
        """
        size = sum(len(p) for p in parts)
        if self.is_open:
            self.conn.writelines((binary_header(size), *parts))
        return size

    def send_framed(self, message: bytes) -> int:
        """Send a whole binary frame made by `binary_frame` (one copy shared by clients)."""
        if self.is_open:
            self.conn.write(message)
        return len(message)

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake and wait (bounded) for the connection to end."""
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


__all__ = ["SUBPROTOCOL", "ConnectionClosed", "WebSocket"]
