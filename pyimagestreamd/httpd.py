"""HTTP connection: one accepted socket, parsed with h11, with every buffer and wait bounded.

The front of the data flow. The server (server.py) accepts a socket and makes it a
`Connection`: an asyncio Protocol whose task reads request heads with h11 (keep-alive,
pipelining, HEAD), hands each to the router (routes.py), and sends what the route answers.
A route may take the connection over: a WebSocket upgrade (wsconn.py) or an MJPEG stream
(mjpegpush.py) then owns it until it closes.

The connection is also the one write path for all of them, which is where the bounds live:
- a request head must arrive within `request_timeout` (slowloris), the next one on a
  keep-alive connection within `idle_timeout`; at most MAX_HEAD bytes and MAX_HEADERS
  header lines; a body is refused (no route takes one);
- output waiting in asyncio's buffer past MAX_PENDING_OUTPUT aborts the connection
  (a ping flood whose pongs are never read), and so does output that asyncio cannot hand
  to the kernel within `send_timeout` (a stalled reader);
- input is read only as far as the current consumer wants it (reading pauses).

Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11

from pyimagestreamd.pacing import SendGate
from pyimagestreamd.secheaders import Headers, security_headers

if TYPE_CHECKING:
    from pyimagestreamd.routes import Handler
    from pyimagestreamd.server import StreamServer

log = logging.getLogger(__name__)

# Largest request head (request line + headers): browsers send 1-3 kB.
MAX_HEAD = 16 * 1024
MAX_HEADERS = 64
# Requests one keep-alive connection may carry before we close it (a page load is ~15).
MAX_REQUESTS = 1000
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
        self._head_size = 0
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=0)
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

    def writelines(self, parts: Iterable[bytes]) -> None:
        """Queue `parts` in order (one sendmsg where asyncio has it, else joined once)."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.writelines(parts)
        if self.transport.get_write_buffer_size() > MAX_PENDING_OUTPUT:
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

    # -- request loop ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._serve_http()
        except Exception:
            self.server.errors.error(
                "connection", "client %s: unexpected error", self.peer, exc_info=True
            )
            self.abort("internal_error")
        finally:
            self.server.connection_done(self)
            if not self.closed.done():
                self.close()

    async def _serve_http(self) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        for number in range(MAX_REQUESTS):
            self._set_pending(True)
            try:
                request = await self._read_head(h, first=number == 0)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                reason = "oversize" if status == 431 else "protocol_error"
                self.server.stats.refused(reason)
                self._send_error(h, status, str(exc) or "bad request")
                return
            except TimeoutError:
                if h.their_state is h11.SEND_BODY or self._input or number == 0:
                    self.server.stats.refused("timeout")
                return
            if request is None:
                return
            self._set_pending(False)
            if self._head_size > MAX_HEAD:
                # h11 bounds a head that arrives in pieces; this one came in one piece.
                self.server.stats.refused("oversize")
                self._send_error(h, 431, f"request head over {MAX_HEAD} bytes")
                return
            if len(request.headers) > MAX_HEADERS:
                self.server.stats.refused("oversize")
                self._send_error(h, 431, f"more than {MAX_HEADERS} header lines")
                return
            keep = await self.handler.handle(self, h, request)
            if not keep or h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                return
            h.start_next_cycle()

    def _set_pending(self, pending: bool) -> None:
        if pending != self.is_pending:
            self.is_pending = pending
            self.server.pending_changed(self, pending)

    async def _read_head(self, h: h11.Connection, first: bool) -> h11.Request | None:
        """The next request head, or None at a clean end of input."""
        srv = self.server.config.server
        loop = asyncio.get_running_loop()
        idle = srv.request_timeout if first else srv.idle_timeout
        fed = len(h.trailing_data[0])  # what the last request left: the start of this one
        async with asyncio.timeout(idle) as deadline:
            started = first
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = await self.read()
                    if data and not started:
                        # The next request has begun: it gets request_timeout for its head.
                        started = True
                        deadline.reschedule(loop.time() + srv.request_timeout)
                    h.receive_data(data)
                    fed += len(data)
                    continue
                if isinstance(event, h11.Request):
                    self._head_size = fed - len(h.trailing_data[0])
                    return event
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return None
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", 400)

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

    def send(self, h: h11.Connection, *events: h11.Event) -> None:
        for event in events:
            data = h.send(event)
            if data:
                self.write(data)

    def _send_error(self, h: h11.Connection, status: int, text: str) -> None:
        """Answer a broken request with a one-line reason and close; quiet if h11 can't."""
        body = (text[:200] + "\n").encode()
        headers = [
            *self.security_headers,
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        try:
            phrase = (
                HTTPStatus(status).phrase.encode()
                if status in HTTPStatus._value2member_map_
                else b""
            )
            self.send(h, h11.Response(status_code=status, headers=headers, reason=phrase))
            self.send(h, h11.Data(data=body), h11.EndOfMessage())
        except h11.LocalProtocolError:
            pass  # not even a request line we could answer: just close
