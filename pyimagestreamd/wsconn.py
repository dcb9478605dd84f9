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

Also here: keepalive pings with a timeout, a bound on the closing handshake, and input left
in the kernel while a protocol-2 handler holds credits (`defer_input`), read when it wakes.
Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
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
from pyimagestreamd.wsframing import binary_header
from pyimagestreamd.wslog import WebsocketsLog
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
# Most bytes read at once from a connection whose input was deferred: a few credits come
# in tens of bytes; more goes back to asyncio's own reading (and its bounds).
MAX_DEFERRED_READ = 4096


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
            logger=WebsocketsLog(limiter),
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
        self._input_deferred = False
        self._fd = -1

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
        self._input_deferred = False  # the end (or the connection's loss) came through asyncio
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
        self.take_input()  # so that the pong is read
        self._ping_payload = os.urandom(4)
        self.protocol.send_ping(self._ping_payload)
        self._flush()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(PING_TIMEOUT, self._ping)

    # -- application side ----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        # A connection being closed (aborted: its socket closes in the next turn) is not:
        # what it still holds unhandled is for no one.
        return (
            self.protocol.state is OPEN and not self.conn.is_closing and not self.conn.closed.done()
        )

    @property
    def input_deferred(self) -> bool:
        """True while what the client sends is left in the kernel (`defer_input`)."""
        return self._input_deferred

    def defer_input(self) -> None:
        """Leave what the client sends in the kernel, to be read by `read_deferred`.

        For a handler that holds credits and will wake for the camera's next frame anyway:
        the credit a client sends for each frame then costs no wake-up of the event loop
        of its own (an epoll wake, a turn of the loop, a recv: the one thing per frame the
        WebSocket path did that /stream.mjpg does not). Over TLS input stays as it is:
        the bytes in the kernel are records, not frames, and pausing a TLS transport only
        holds back the decrypted data, so a "pause" would wait until the credits ran out
        (tests/test_wsinput.py). The keepalive ping reads input as it comes again, so
        that a client gone quiet is still seen.
        """
        transport = self.conn.transport
        if self._input_deferred or self.conn.secure or not self.is_open or transport is None:
            return
        if self._fd < 0:
            self._fd = transport.get_extra_info("socket").fileno()
        self._input_deferred = True
        transport.pause_reading()

    def read_deferred(self) -> None:
        """Read (without waiting) what came while input was deferred, as if it came now.

        Called by the handler when it wakes, before it acts: it then knows everything the
        client sent before, as when input was read as it came. Anything else than data
        (the end, an error, more than MAX_DEFERRED_READ at once) goes back to asyncio,
        which reads as it comes again and reports the end or the error itself.
        """
        if not self._input_deferred:
            return
        transport = self.conn.transport
        if transport is None or transport.is_closing() or self.conn.closed.done():
            # The socket is being closed (its number may soon be another's): never read it.
            self._input_deferred = False
            return
        try:
            data = os.read(self._fd, MAX_DEFERRED_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._receive(data)
        if len(data) in {0, MAX_DEFERRED_READ}:
            self.take_input()

    def take_input(self) -> None:
        """Let asyncio read what the client sends as it comes again (after `defer_input`)."""
        if self._input_deferred:
            self._input_deferred = False
            if self.conn.transport is not None and not self.conn.transport.is_closing():
                self.conn.transport.resume_reading()

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


__all__ = ["SUBPROTOCOL", "ConnectionClosed", "WebSocket"]
