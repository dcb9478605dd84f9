"""WebSocket route: origin and capacity checks, the handshake, then one of the two protocols.

Reached from routes.py for /websocket and /websocket/<camera> after the Host check. The page
must come from this server's own origin (scheme included) or an allowed one (access.py); the
handshake itself is websockets' (wsconn.py); a camera that does not exist closes with 4404
and a full server with 1013, after the handshake, so that browsers can show the reason.
Event-loop thread only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import h11

from pyimagestreamd import access
from pyimagestreamd.httpd import Connection
from pyimagestreamd.static import text_reply
from pyimagestreamd.ws_original import serve_original
from pyimagestreamd.ws_v2 import ProtocolV2
from pyimagestreamd.wsconn import SUBPROTOCOL, ConnectionClosed, WebSocket

if TYPE_CHECKING:
    from pyimagestreamd.server import StreamServer
    from pyimagestreamd.urls import Route

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_UNKNOWN_CAMERA = 4404


async def serve_websocket(  # noqa: PLR0917 - the request, parsed three ways
    server: StreamServer,
    conn: Connection,
    h: h11.Connection,
    request: h11.Request,
    headers: dict[str, str],
    route: Route,
) -> None:
    """Run one WebSocket from its upgrade request to its end."""
    srv = server.config.server
    if not access.origin_allowed(
        headers.get("origin"), headers.get("host"), conn.secure, srv.allowed_origins
    ):
        origin = headers.get("origin", "")[:80]
        server.refused(conn.peer, "origin", f"a WebSocket from origin {origin!r}")
        server.warnings.warning("origin", "refused a WebSocket from origin %s", origin)
        server.router.reply(conn, h, text_reply(403, "origin not allowed"), close=True)
        return
    ws = WebSocket(conn, server.errors)
    rest, _ = h.trailing_data
    raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw_items()]
    # websockets refuses anything but HTTP/1.1 itself (505): pass the version on.
    version = "HTTP/1.1" if request.http_version == b"1.1" else "HTTP/1.0"
    response = ws.handshake(request.target.decode("ascii", "replace"), raw, rest, version)
    if response.status_code != 101:
        why = f"WebSocket handshake {response.status_code}: {_handshake_error(response.body)}"
        server.refused(conn.peer, "protocol_error", why)
        return
    conn.kind = "websocket"
    runner = server.runners.get(route.camera or server.config.cameras[0].name)
    if runner is None:
        server.refused(conn.peer, "protocol_error", f"unknown camera {route.camera[:64]!r}")
        await ws.close(CLOSE_UNKNOWN_CAMERA, f"unknown camera {route.camera[:64]!r}")
        return
    limit = srv.max_clients
    if len(server.clients) >= limit:
        server.refused(conn.peer, "full", f"a WebSocket: {limit} clients already")
        server.warnings.warning(
            "full", "refused a client: %d clients already (server.max_clients)", limit
        )
        await ws.close(CLOSE_TRY_AGAIN, f"server full: {limit} clients")
        return
    server.clients[conn] = runner.name
    server.websockets[conn] = ws
    proto = 2 if ws.subprotocol == SUBPROTOCOL else 1
    if proto == 2 and conn.gate is not None:
        # Protocol 2's credits can ask for more than the path holds: the push stream's
        # in-flight bound keeps the surplus at the server (which then sends the newest frame)
        # instead of in the link's queue. On the shaped link that took p95 age from 0.60 to
        # 0.45 s at 2 Mbit/s, same rate (README, "Slow links"). The original protocol's
        # single request has nothing to bound.
        conn.gate.bound_in_flight = True
    log.debug("client %s connected to %s (protocol %d)", conn.peer, runner.name, proto)
    try:
        if proto == 2:
            await ProtocolV2(ws, runner.hub, [c.name for c in server.config.cameras]).run()
        else:
            await serve_original(ws, runner.hub)
    except ConnectionClosed:
        pass
    finally:
        server.clients.pop(conn, None)
        server.websockets.pop(conn, None)
        ws.finish()
        log.debug("client %s disconnected from %s", conn.peer, runner.name)
    await ws.close(CLOSE_NORMAL, "")


def _handshake_error(body: bytes | bytearray) -> str:
    """What websockets found wrong with a handshake, without the value it quotes.

    Its refusal reads "Failed to open a WebSocket connection: invalid Upgrade header: VALUE."
    (the value is the client's): the words up to the value are ours to log.
    """
    text = bytes(body).decode("utf-8", "replace").strip().rstrip(".")
    _, _, found = text.partition(": ")
    return (found or text).split(": ", 1)[0][:80]
