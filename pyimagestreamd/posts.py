"""The checks every state-changing POST passes before its handler reads what it asks.

Between the routes (routes.py: log in, log out and revoke a share link, for authapi.py)
or the settings API (controlapi.py) and their handlers: a POST that names an `Origin`
must name our own (or one of `server.allowed_origins`), as a WebSocket handshake must
(access.py), so that a cross-site page cannot change anything even where a browser would
send it the cookies; and its body is read only up to MAX_BODY bytes and within the
request timeout. A refusal is counted and logged (server.py's `refused`) and is a JSON
`Reply` the caller sends before closing the connection. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import h11

from pyimagestreamd import access
from pyimagestreamd.static import Reply

if TYPE_CHECKING:
    from pyimagestreamd.httpd import Connection
    from pyimagestreamd.server import StreamServer

# A settings change is a few controls by name, the account POSTs carry nothing: far below.
MAX_BODY = 16 * 1024


def json_reply(status: int, doc: dict[str, Any], *extra: tuple[str, str]) -> Reply:
    body = (json.dumps(doc) + "\n").encode()
    return Reply(
        status,
        (("Content-Type", "application/json"), ("Cache-Control", "no-store"), *extra),
        body,
    )


async def read_body(conn: Connection, h: h11.Connection, limit: int) -> bytes | None:
    """The request body, or None if it is longer than `limit` (the rest is not read).

    Unbounded in time: the caller puts it under the request timeout."""
    body = bytearray()
    while True:
        event = h.next_event()
        if event is h11.NEED_DATA:
            h.receive_data(await conn.read())
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                return None
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        else:
            return None  # the connection ended inside the body


async def read_post(
    server: StreamServer, conn: Connection, h: h11.Connection, headers: dict[str, str], what: str
) -> bytes | Reply:
    """The body of a POST from our own origin, or the refusal to send (then close).

    `what` names the change in the rate-limited warning ("a settings change", "a login")."""
    srv = server.config.server
    secure = server.tls is not None
    if not access.origin_allowed(
        headers.get("origin"), headers.get("host"), secure, srv.allowed_origins
    ):
        origin = headers.get("origin", "")[:80]
        server.refused(conn.peer, "origin", f"{what} from origin {origin!r}")
        server.warnings.warning("post-origin", "refused %s from origin %s", what, origin)
        return json_reply(403, {"error": "origin not allowed"})
    # A declared length over the bound is refused unread; a chunked body is bounded while
    # it is read.
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        server.refused(conn.peer, "oversize", f"{what}: Content-Length {length[:20]!r}")
        return json_reply(413, {"error": f"request body over {MAX_BODY} bytes"})
    try:
        async with asyncio.timeout(srv.request_timeout):
            body = await read_body(conn, h, MAX_BODY)
    except TimeoutError:
        server.refused(conn.peer, "timeout", f"{what}: body not received in time")
        return json_reply(408, {"error": "request body not received in time"})
    if body is None:
        server.refused(conn.peer, "oversize", f"{what}: body over {MAX_BODY} bytes")
        return json_reply(413, {"error": f"request body over {MAX_BODY} bytes"})
    return body
