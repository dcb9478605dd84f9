"""The HTTP/1.1 request loop of one connection: heads read with h11, bounded, routed.

The task of every accepted connection (httpd.py) runs `serve_http`: one request head after
another on a keep-alive connection (pipelining and HEAD through h11), each handed to the
connection's handler (the router, routes.py; or the plain-HTTP redirect, redirect.py),
until a handler keeps the connection for itself (a WebSocket or an MJPEG stream), says
close, or the client goes. The bounds of a request head live here:
- it must arrive within `request_timeout` (slowloris), the next one on a keep-alive
  connection within `idle_timeout`, or `request_timeout` once it has begun (also when a
  pipelined burst left its start behind);
- at most MAX_HEAD bytes and MAX_HEADERS header lines, MAX_REQUESTS per connection;
- a broken or oversized head is answered with its status and a one-line reason, then the
  connection is closed; each refusal is counted by reason (stats.py) and logged in one
  DEBUG line without the request's bytes (server.py's `refused`).
The connection's bounded input and output are httpd.py's. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11

if TYPE_CHECKING:
    from pyimagestreamd.httpd import Connection

# Largest request head (request line + headers): browsers send 1-3 kB.
MAX_HEAD = 16 * 1024
MAX_HEADERS = 64
# Requests one keep-alive connection may carry before we close it (a page load is ~15).
MAX_REQUESTS = 1000
# Where h11's reason starts quoting the request's bytes (a header value may be a secret).
_QUOTED = re.compile(r":? (?:bytearray\()?b['\"]")


async def serve_http(conn: Connection) -> None:
    """Answer the connection's requests until it closes or a handler takes it over."""
    h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    for number in range(MAX_REQUESTS):
        conn.set_pending(True)
        try:
            head = await _read_head(conn, h, first=number == 0)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            reason = "oversize" if status == 431 else "protocol_error"
            _refuse(conn, h, reason, status, str(exc) or "bad request")
            return
        except TimeoutError:
            # A head begun: read() hands each arrival to h11 at once, so its bytes wait in
            # h11's buffer (or came in after the last read).
            begun = bool(h.trailing_data[0]) or conn.has_unread_input
            if h.their_state is h11.SEND_BODY or begun or number == 0:
                conn.server.refused(conn.peer, "timeout", "request head incomplete")
            return
        if head is None:
            return
        request, head_size = head
        conn.set_pending(False)
        if head_size > MAX_HEAD:
            # h11 bounds a head that arrives in pieces; this one came in one piece.
            _refuse(conn, h, "oversize", 431, f"request head over {MAX_HEAD} bytes")
            return
        if len(request.headers) > MAX_HEADERS:
            _refuse(conn, h, "oversize", 431, f"more than {MAX_HEADERS} header lines")
            return
        keep = await conn.handler.handle(conn, h, request)
        if not keep or h.our_state is not h11.DONE or h.their_state is not h11.DONE:
            return
        h.start_next_cycle()


async def _read_head(
    conn: Connection, h: h11.Connection, first: bool
) -> tuple[h11.Request, int] | None:
    """The next request head and its size in bytes, or None at a clean end of input."""
    srv = conn.server.config.server
    loop = asyncio.get_running_loop()
    fed = len(h.trailing_data[0])  # what the last request left: the start of this one
    # A pipelined burst may have left part of this head in h11's buffer: it has begun.
    started = first or fed > 0
    async with asyncio.timeout(srv.request_timeout if started else srv.idle_timeout) as deadline:
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                data = await conn.read()
                if data and not started:
                    # The next request has begun: it gets request_timeout for its head.
                    started = True
                    deadline.reschedule(loop.time() + srv.request_timeout)
                h.receive_data(data)
                fed += len(data)
                continue
            if isinstance(event, h11.Request):
                return event, fed - len(h.trailing_data[0])
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", 400)


def _refuse(conn: Connection, h: h11.Connection, reason: str, status: int, text: str) -> None:
    """Count a refused head, log it (DEBUG, per connection) and answer it; the caller closes."""
    conn.server.refused(conn.peer, reason, _QUOTED.split(text, 1)[0][:100])
    _send_error(conn, h, status, text)


def _send_error(conn: Connection, h: h11.Connection, status: int, text: str) -> None:
    """Answer a broken request with a one-line reason and close; quiet if h11 can't."""
    body = (text[:200] + "\n").encode()
    headers = [
        *conn.security_headers,
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    try:
        phrase = (
            HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b""
        )
        conn.send(h, h11.Response(status_code=status, headers=headers, reason=phrase))
        conn.send(h, h11.Data(data=body), h11.EndOfMessage())
    except h11.LocalProtocolError:
        pass  # not even a request line we could answer: just close
