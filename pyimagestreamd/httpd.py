"""HTTP connection: one accepted socket, with every buffer and wait bounded.

The front of the data flow. The server (server.py) accepts a socket and makes it a
`Connection`: an asyncio Protocol whose task runs the HTTP/1.1 request loop (httploop.py:
request heads read with h11 within their bounds, each handed to the router, routes.py),
and sends what the route answers. A route may take the connection over: a WebSocket
upgrade (wsconn.py) or an MJPEG stream (mjpegpush.py) then owns it until it closes.

The connection is also the one write path for all of them, which is where the bounds live:
- output waiting in asyncio's buffer past MAX_PENDING_OUTPUT aborts the connection
  (a ping flood whose pongs are never read), and so does output that asyncio cannot hand
  to the kernel within `send_timeout` (a stalled reader);
- input is read only as far as the current consumer wants it (reading pauses past
  MAX_INPUT); `finish_request` refuses a body on a request that takes none (a POST's
  bounded body is read by posts.py).

Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import h11

from pyimagestreamd.httploop import serve_http
from pyimagestreamd.pacing import SendGate
from pyimagestreamd.secheaders import Headers, security_headers

if TYPE_CHECKING:
    from pyimagestreamd.routes import Handler
    from pyimagestreamd.server import StreamServer

log = logging.getLogger(__name__)

# Unread input kept per connection before reading pauses.
MAX_INPUT = 64 * 1024
# Output asyncio may hold for one client: several large frames. Past it the client is not
# reading (or floods us with pings whose pongs it never reads): abort it.
MAX_PENDING_OUTPUT = 4 * 1024 * 1024
# asyncio calls pause_writing() as soon as it buffers anything (high-water mark 0) and
# resume_writing() once its buffer is empty: that pair is the only signal it gives of having
# handed everything to the kernel, which drained() (and so the pacing gate) waits for. With
# a higher mark, a frame partly left in the buffer below it never resumed anyone: a push
# client slower than the camera got two frames, then nothing until send_timeout dropped it.
WRITE_HIGH_WATER = 0


def unsent_parts(parts: Sequence[bytes], sent: int) -> bytes:
    """What is left of `parts`, joined, once their first `sent` bytes are sent."""
    for i, part in enumerate(parts):
        if sent < len(part):
            return b"".join((memoryview(part)[sent:], *parts[i + 1 :]))
        sent -= len(part)
    return b""


class Connection(asyncio.Protocol):
    """One client connection: input buffer, bounded output, and its handling task."""

    def __init__(
        self, server: StreamServer, peer: str, handler: Handler, secure: bool = False
    ) -> None:
        self.server = server
        self.peer = peer
        # What answers its requests: the router, or the plain-HTTP redirect (redirect.py).
        self.handler = handler
        # Over TLS: its answers carry Strict-Transport-Security.
        self.secure = secure
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # True until the request head is complete: counts against max_pending_per_address.
        self.is_pending = True
        # What the connection is now, for /api/state ("http", "websocket", "mjpeg").
        self.kind = "http"
        self.gate: SendGate | None = None
        self._input = bytearray()
        self._eof = False
        self._reading_paused = False
        self._input_waiter: asyncio.Future[None] | None = None
        # A route that took the connection over gets data as it comes (the WebSocket).
        self._receiver: Callable[[bytes], None] | None = None
        self._eof_receiver: Callable[[], None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._stall_handle: asyncio.TimerHandle | None = None
        self.abort_reason = ""
        self.task: asyncio.Task[None] | None = None
        # The socket's descriptor for `writelines` (-1 over TLS: the socket carries records).
        self._fd = -1

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=0)
        sock = transport.get_extra_info("socket")
        if not self.secure and sock is not None:
            self._fd = sock.fileno()
        self.gate = SendGate(self)
        self.task = asyncio.ensure_future(self._run())

    def data_received(self, data: bytes) -> None:
        if self._receiver is not None:
            self._receiver(data)
            return
        self._input += data
        if len(self._input) > MAX_INPUT and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        if self._eof_receiver is not None:
            self._eof_receiver()
        self._wake_reader()
        # Keep the write side open: a half-closed client still gets its answer. (TLS cannot
        # half-close: asyncio closes it whatever we say, and logs a warning if we say True.)
        return not self.secure

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake_reader()
        if self._stall_handle is not None:
            self._stall_handle.cancel()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if not self.closed.done():
            self.closed.set_result(None)
        if self._eof_receiver is not None:
            self._eof_receiver()

    def pause_writing(self) -> None:
        # Output is waiting in asyncio's buffer: it has send_timeout to reach the kernel.
        loop = asyncio.get_running_loop()
        timeout = self.server.config.server.send_timeout
        self._stall_handle = loop.call_later(timeout, self.abort, "stalled")

    def resume_writing(self) -> None:
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- input -------------------------------------------------------------------------

    @property
    def has_unread_input(self) -> bool:
        """True if bytes have arrived that nobody has read yet (a head begun, say)."""
        return bool(self._input)

    def _wake_reader(self) -> None:
        if self._input_waiter is not None and not self._input_waiter.done():
            self._input_waiter.set_result(None)

    async def read(self) -> bytes:
        """The input received so far (b"" at end of input), waiting for some if none."""
        while not self._input and not self._eof:
            self._input_waiter = asyncio.get_running_loop().create_future()
            await self._input_waiter
        data = bytes(self._input)
        self._input.clear()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def take_over_input(
        self, receiver: Callable[[bytes], None], eof_receiver: Callable[[], None]
    ) -> None:
        """From now on, hand every received byte to `receiver` as it arrives."""
        self._receiver, self._eof_receiver = receiver, eof_receiver
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        if self._eof:
            eof_receiver()

    # -- output: the one write path ------------------------------------------------------

    @property
    def security_headers(self) -> Headers:
        """The headers every response on this connection carries (secheaders.py)."""
        return security_headers(self.server.config.server.frame_ancestors, self.secure)

    @property
    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    @property
    def pending_output(self) -> int:
        return 0 if self.transport is None else self.transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        """Queue `data`; abort the connection if its unsent output passes the bound."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > MAX_PENDING_OUTPUT:
            self.abort("output_overflow")

    def writelines(self, parts: Sequence[bytes]) -> None:
        """Queue `parts` in order, without joining them (a frame and its per-client head).

        With nothing in asyncio's buffer, the parts go to the kernel in one writev, as a
        write() would send at once (Python 3.11's transports join them first: a copy of the
        frame per client); asyncio gets what the kernel did not take, as with a write().
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._fd < 0 or transport.get_write_buffer_size():
            transport.writelines(parts)
        else:
            try:
                sent = os.writev(self._fd, parts)
            except OSError:
                # Full (EAGAIN) or broken: asyncio's own send of it meets the same, and
                # buffers the bytes or ends the connection as on any write.
                sent = 0
            if sent < sum(map(len, parts)):  # the common case, all sent, without a loop
                transport.write(unsent_parts(parts, sent))
        if transport.get_write_buffer_size() > MAX_PENDING_OUTPUT:
            self.abort("output_overflow")

    def write_eof(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()

    async def drained(self) -> None:
        """Return once asyncio holds no unsent output (or the connection is gone)."""
        if self.pending_output == 0 or self.is_closing:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """Close after the pending output is sent (bounded by the stall clock)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection now, counting why ("stalled", "output_overflow", ...)."""
        if self.transport is None or self.closed.done() or self.abort_reason:
            return
        self.abort_reason = reason
        self.server.stats.aborted(reason)
        log.debug("client %s: aborted (%s)", self.peer, reason)
        self.transport.abort()

    # -- its task, and the h11 events of each request ----------------------------------

    async def _run(self) -> None:
        try:
            await serve_http(self)
        except Exception:
            self.server.errors.error(
                "connection", "client %s: unexpected error", self.peer, exc_info=True
            )
            self.abort("internal_error")
        finally:
            self.server.connection_done(self)
            if not self.closed.done():
                self.close()

    async def finish_request(self, h: h11.Connection) -> bool:
        """Read to the end of the request; False if it carries a body (no route takes one)."""
        srv = self.server.config.server
        async with asyncio.timeout(srv.request_timeout):
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    h.receive_data(await self.read())
                    continue
                if isinstance(event, h11.EndOfMessage):
                    return True
                if isinstance(event, h11.Data) and not event.data:
                    continue
                return False

    def set_pending(self, pending: bool) -> None:
        """Mark the connection as waiting for a request head (True) or past it (False)."""
        if pending != self.is_pending:
            self.is_pending = pending
            self.server.pending_changed(self, pending)

    def send(self, h: h11.Connection, *events: h11.Event) -> None:
        for event in events:
            data = h.send(event)
            if data:
                self.write(data)
