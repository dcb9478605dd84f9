"""WebSocket I/O: the bytes of one WebSocket connection in and out, and its deferred input.

The lower half of a WebSocket (wsconn.py has the upper: the handshake, keepalive, the
application's receive, send and close). Every received byte goes to websockets'
sans-I/O `ServerProtocol` through the reader that takes the clients' small messages in
itself (wsreader.py): messages are queued for the handler (at most MAX_INBOX) or taken on
arrival (`take_message`: protocol 2's credits), and whatever websockets wants to send
(pongs, close frames) goes out through the connection's one bounded write path
(httpd.py). While a protocol-2 handler holds credits, what the client sends can be left
in the kernel (`defer_input`) and read, without waiting, when the handler acts next
(`read_deferred`): per frame, that is a read instead of a wake-up of the event loop.
Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import Callable

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from pyimagestreamd.httpd import Connection
from pyimagestreamd.wsreader import MessageReader

# Clients only send tiny control messages: anything bigger is hostile or broken (1009).
MAX_MESSAGE_SIZE = 1024
# Messages received and not yet handled; more means the client does not wait for answers.
MAX_INBOX = 64
CLOSE_TIMEOUT = 5.0
# Most bytes read at once from a connection whose input was deferred: a few credits come
# in tens of bytes; more goes back to asyncio's own reading (and its bounds).
MAX_DEFERRED_READ = 4096


class WebSocketIO:
    """One WebSocket's input and websockets' output; its messages in `messages`."""

    def __init__(self, conn: Connection, protocol: ServerProtocol) -> None:
        self.conn = conn
        self.protocol = protocol
        self.messages: collections.deque[str | bytes] = collections.deque()
        self.reader = MessageReader(
            self.protocol, MAX_MESSAGE_SIZE, self._on_message, self._on_control
        )
        # The reader's wait (a message or the end), and the payload of the ping unanswered.
        self._waiter: asyncio.Future[None] | None = None
        self._ping_payload: bytes | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.overflowed = False
        # Called with each message that completes while none is queued; True if it used
        # the message, which then is not queued and wakes no one (protocol 2's credits).
        self.take_message: Callable[[str | bytes], bool] | None = None
        self._queued = False
        self._input_deferred = False
        self._fd = -1

    # -- I/O loop: data in, events out, data to send ------------------------------------

    def _receive(self, data: bytes) -> None:
        # Only what websockets was given can have made output or a new state, and only a
        # queued message wakes the reader: a credit taken on arrival needs neither.
        if self.reader.receive_data(data) or self._queued:
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

    def read_deferred(self) -> bool:
        """Read (without waiting) what came while input was deferred, as if it came now;
        True if input is still deferred after it.

        Called by the handler when it wakes, before it acts: it then knows everything the
        client sent before, as when input was read as it came. Anything else than data
        (the end, an error, more than MAX_DEFERRED_READ at once) goes back to asyncio,
        which reads as it comes again and reports the end or the error itself.
        """
        if not self._input_deferred:
            return False
        transport = self.conn.transport
        if transport is None or transport.is_closing() or self.conn.closed.done():
            # The socket is being closed (its number may soon be another's): never read it.
            self._input_deferred = False
            return False
        try:
            data = os.read(self._fd, MAX_DEFERRED_READ)
        except BlockingIOError:
            return True  # nothing came: still deferred
        except OSError:
            data = b""
        if data:
            self._receive(data)
        if len(data) in {0, MAX_DEFERRED_READ}:
            self.take_input()
        return self._input_deferred

    def take_input(self) -> None:
        """Let asyncio read what the client sends as it comes again (after `defer_input`)."""
        if self._input_deferred:
            self._input_deferred = False
            if self.conn.transport is not None and not self.conn.transport.is_closing():
                self.conn.transport.resume_reading()
