"""Routes: what each request gets, after the checks every request passes.

Between the HTTP connection (httpd.py) and the handlers. For each request head h11 parsed:
duplicate Host/Origin -> 400; a Host that is not ours -> 421 (DNS rebinding, access.py);
`authorize` (gate.py: accounts, sessions, share links, the local-only default); then the
account routes (authapi.py) or the route: the browser client's files (static.py),
/api/state and /metrics (state.py, metrics.py), snapshots, MJPEG streams (mjpegpush.py)
and WebSockets (websocket.py), under our own paths and the spellings other tools use:

    /snapshot.jpg, /snapshot/<camera>.jpg, /snapshot, /?action=snapshot     one JPEG
    /stream.mjpg, /stream/<camera>.mjpg, /stream, /?action=stream           MJPEG push
    /websocket, /websocket/<camera>                                         pull protocols
    /api/camera/<camera>/controls[/reset|/save]          camera settings (controlapi.py)

`?camera=NAME` picks the camera on any of them (the first camera by default), `?fps=N`
caps a stream's rate. Only GET and HEAD (405 otherwise), no request bodies (413), except
the POSTs that change something (posts.py): log in, log out, revoke a share link, and the
settings API's.
Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import weakref
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from pyimagestreamd import __version__, access, metrics, state
from pyimagestreamd.authapi import ACCOUNT_PATHS, CHANGE_PATHS, AccountAPI, classify
from pyimagestreamd.camera import CameraState
from pyimagestreamd.controlapi import ControlAPI, parse_path
from pyimagestreamd.gate import Gate, Principal, Refusal
from pyimagestreamd.httpd import Connection
from pyimagestreamd.hub import Hub
from pyimagestreamd.mjpegpush import response_head, serve_mjpeg
from pyimagestreamd.posts import read_post
from pyimagestreamd.static import Reply, serve_file, text_reply
from pyimagestreamd.websocket import serve_websocket

if TYPE_CHECKING:
    from pyimagestreamd.server import StreamServer

SERVER_HEADER = f"pyimagestreamd/{__version__}"
# How often open streams are re-checked against logouts, revoked and expired share links.
REVALIDATE_INTERVAL = 1.0
CLOSE_POLICY = 1008


class Handler(Protocol):
    """What answers the requests of a connection (httpd.py): the Router, or the plain-HTTP
    redirect (redirect.py)."""

    async def handle(self, conn: Connection, h: h11.Connection, request: h11.Request) -> bool:
        """Answer one request; True if the connection may carry another one."""
        ...


@dataclass(frozen=True, slots=True)
class Route:
    """What a request asks for: kind ("static", "state", "metrics", "snapshot", "stream",
    "websocket"), the camera name for camera routes, and the parsed query."""

    kind: str
    path: str
    camera: str = ""
    query: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


def match(target: str) -> Route:
    """The route of a request target (path and query, as sent)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    query = tuple((k, v[0]) for k, v in parse_qs(parts.query, max_num_fields=16).items())
    camera = next((v for k, v in query if k == "camera"), "")
    action = next((v for k, v in query if k == "action"), None)
    if path == "/websocket" or path.startswith("/websocket/"):
        return Route("websocket", path, unquote(path[len("/websocket/") :]) or camera, query)
    if path in ("/snapshot.jpg", "/snapshot") or (path == "/" and action == "snapshot"):
        return Route("snapshot", path, camera, query)
    if path.startswith("/snapshot/") and path.endswith(".jpg"):
        return Route("snapshot", path, unquote(path[len("/snapshot/") : -len(".jpg")]), query)
    if path in ("/stream.mjpg", "/stream") or (path == "/" and action == "stream"):
        return Route("stream", path, camera, query)
    if path.startswith("/stream/") and path.endswith(".mjpg"):
        return Route("stream", path, unquote(path[len("/stream/") : -len(".mjpg")]), query)
    if path == "/api/state":
        return Route("state", path, query=query)
    if (settings := parse_path(path)) is not None:
        return Route("controls", path, unquote(settings[0]), query)
    if path == "/metrics":
        return Route("metrics", path, query=query)
    return Route("static", path, query=query)


class Router:
    """Checks and answers requests for one server."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.local_names = access.local_names()
        self.gate = Gate.from_config(server.config)
        self.account_api = AccountAPI(
            self.gate, self.revalidate, secure=lambda: server.tls is not None
        )
        self.control_api = ControlAPI(server)
        # Who opened each stream (WebSocket, MJPEG), for cutting it off when that ends.
        self.principals: weakref.WeakKeyDictionary[Connection, Principal] = (
            weakref.WeakKeyDictionary()
        )

    async def authorize(
        self, conn: Connection, headers: dict[str, str], route: Route
    ) -> Principal | Reply:
        """The access check: a Principal lets the request through, a Reply refuses it.

        Called for every request after the Host check and before routing, with the parsed
        route (its kind and camera), so that the same decision covers the page, snapshots,
        streams and WebSockets alike (gate.py).
        """
        default = self.server.config.cameras[0].name
        kind, camera = classify(route.kind, route.path, route.camera or default)
        decision = await self.gate.check(conn.peer, headers, kind, camera)
        if isinstance(decision, Refusal):
            self.server.stats.refused("auth")
            ctype = "text/html; charset=utf-8" if decision.html else "text/plain; charset=utf-8"
            body = (decision.html or decision.text + "\n").encode()
            extra = tuple(decision.headers.items())
            return Reply(decision.status, (("Content-Type", ctype), *extra), body)
        if route.kind in ("websocket", "stream"):
            self.principals[conn] = decision
        return decision

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

    def front_door(
        self, conn: Connection, h: h11.Connection, request: h11.Request
    ) -> dict[str, str] | None:
        """The request's headers (lower-case names), or None once a refusal is sent: two
        Host or Origin headers (400), a Host that is not ours (421)."""
        stats = self.server.stats
        stats.http_requests += 1
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1")
            if name in headers and name in ("host", "origin"):
                stats.refused("protocol_error")
                self.reply(conn, h, text_reply(400, f"more than one {name} header"), close=True)
                return None
            headers[name] = raw_value.decode("latin-1")
        srv = self.server.config.server
        if not access.host_allowed(headers.get("host"), srv.allowed_hosts, self.local_names):
            stats.refused("host")
            host = headers.get("host", "")[:80]
            text = f"host {host!r} is not one of this server's names (server.allowed_hosts)"
            self.reply(conn, h, text_reply(421, text), close=True)
            return None
        return headers

    async def handle(self, conn: Connection, h: h11.Connection, request: h11.Request) -> bool:
        """Answer one request; True if the connection may carry another one."""
        stats = self.server.stats
        headers = self.front_door(conn, h, request)
        if headers is None:
            return False
        target = request.target.decode("ascii", "replace")
        route = match(target)
        principal = await self.authorize(conn, headers, route)
        if isinstance(principal, Reply):
            return self.reply(conn, h, principal, close=True)
        method = request.method.decode("ascii", "replace")
        if route.kind == "controls":
            reply, close = await self.control_api.serve(
                conn, h, method, route, headers, principal=principal
            )
            return self.reply(conn, h, reply, method == "HEAD", close=close)
        if route.path in ACCOUNT_PATHS or route.path.startswith("/share/"):
            return await self._account(
                conn, h, method, route, headers, target=target, principal=principal
            )
        if method not in ("GET", "HEAD") or (route.kind == "websocket" and method != "GET"):
            stats.refused("method")
            allow = "GET" if route.kind == "websocket" else "GET, HEAD"
            reply = text_reply(405, "method not allowed", ("Allow", allow))
            return self.reply(conn, h, reply, close=True)
        if not await conn.finish_request(h):
            stats.refused("oversize")
            return self.reply(
                conn, h, text_reply(413, "request bodies are not accepted"), close=True
            )
        head = method == "HEAD"
        if route.kind == "websocket":
            await serve_websocket(self.server, conn, h, request, headers, route)
            return False
        if route.kind == "static":
            web_root = self.server.web_root
            return self.reply(conn, h, serve_file(web_root, route.path, headers), head)
        if route.kind == "state":
            doc = state.api_state(self.server)
            if principal.camera is not None:  # a share link sees its own camera only
                doc["cameras"] = [c for c in doc["cameras"] if c["name"] == principal.camera]
            body = json.dumps(doc, indent=1).encode()
            reply = Reply(
                200, (("Content-Type", "application/json"), ("Cache-Control", "no-store")), body
            )
            return self.reply(conn, h, reply, head)
        if route.kind == "metrics":
            body, ctype = metrics.render(self.server)
            reply = Reply(200, (("Content-Type", ctype), ("Cache-Control", "no-store")), body)
            return self.reply(conn, h, reply, head)
        runner = self.server.runners.get(route.camera or self.server.config.cameras[0].name)
        if runner is None:
            return self.reply(
                conn, h, text_reply(404, f"unknown camera {route.camera[:64]!r}"), head
            )
        if route.kind == "snapshot":
            return self.reply(conn, h, await self._snapshot(conn, runner.hub), head)
        return await self._stream(conn, h, route, runner.hub, head)

    async def _account(
        self,
        conn: Connection,
        h: h11.Connection,
        method: str,
        route: Route,
        headers: dict[str, str],
        *,
        target: str,
        principal: Principal,
    ) -> bool:
        """The account routes (authapi.py): the ones that change something are POSTs."""
        allow = "POST" if route.path in CHANGE_PATHS else "GET, HEAD"
        if method not in allow.split(", "):
            self.server.stats.refused("method")
            reply = text_reply(405, "method not allowed", ("Allow", allow))
            return self.reply(conn, h, reply, close=True)
        if method == "POST":
            # Nothing is read from the body, but it is bounded as any POST's.
            body = await read_post(self.server, conn, h, headers, f"a POST to {route.path}")
            if isinstance(body, Reply):
                return self.reply(conn, h, body, close=True)
        elif not await conn.finish_request(h):
            self.server.stats.refused("oversize")
            reply = text_reply(413, "request bodies are not accepted")
            return self.reply(conn, h, reply, close=True)
        query = urlsplit(target).query
        answer = await self.account_api.handle(conn.peer, route.path, query, headers, principal)
        reply = Reply(answer.status, (
            ("Content-Type", answer.content_type),
            ("Cache-Control", "no-store"),
            *answer.headers.items(),
        ), answer.body)  # fmt: skip
        return self.reply(conn, h, reply, method == "HEAD")

    async def _snapshot(self, conn: Connection, hub: Hub) -> Reply:
        timeout = self.server.config.server.snapshot_timeout
        hub.add_viewer()  # wakes a sleeping camera; the stop delay applies afterwards
        try:
            frame = hub.latest
            if frame is None or hub.state not in (CameraState.LIVE, CameraState.OFFLINE):
                seq = frame.seq if frame is not None else 0
                # Bounded by snapshot_timeout alone (any value the config allows), and ended
                # early if the client leaves.
                async with asyncio.timeout(timeout):
                    frame = await hub.wait_frame_after(seq, until=conn.closed)
        except TimeoutError:
            frame = None
            reason = hub.reason or f"no frame within {timeout:g} s"
            text = f"camera {hub.name} {hub.state.value}: {reason}"
            return text_reply(503, text, ("Retry-After", "5"))
        finally:
            hub.remove_viewer()
        if frame is None:
            return text_reply(503, "client left")
        self.server.stats.frame_sent(hub, frame, len(frame.jpeg), "snapshot")
        return Reply(200, (
            ("Content-Type", "image/jpeg"),
            ("Cache-Control", "no-store"),
            ("X-Frame-Seq", str(frame.seq)),
            ("X-Frame-Time", f"{frame.wall_time:.3f}"),
            ("X-Timestamp", f"{frame.wall_time:.3f}"),
        ), frame.jpeg)  # fmt: skip

    async def _stream(
        self, conn: Connection, h: h11.Connection, route: Route, hub: Hub, head: bool
    ) -> bool:
        fps: float | None = None
        if (text := route.param("fps")) is not None:
            try:
                fps = float(text)
            except ValueError:
                fps = -1.0
            if not 0.01 <= fps <= 1000:
                return self.reply(
                    conn, h, text_reply(400, "fps: expected a number 0.01..1000"), head
                )
        limit = self.server.config.server.max_clients
        if not head and len(self.server.clients) >= limit:
            self.server.stats.refused("full")
            reply = text_reply(503, f"server full: {limit} clients", ("Retry-After", "5"))
            return self.reply(conn, h, reply, head, close=True)
        date = email.utils.formatdate(usegmt=True)
        conn.write(response_head(SERVER_HEADER, date, conn.security_headers))
        if head:
            return False
        conn.kind = "mjpeg"
        if conn.gate is not None:
            conn.gate.bound_in_flight = True  # a push stream: no window bounds its bytes in flight
        self.server.clients[conn] = hub.name
        try:
            await serve_mjpeg(conn, hub, fps)
        finally:
            self.server.clients.pop(conn, None)
        return False

    def reply(
        self,
        conn: Connection,
        h: h11.Connection,
        reply: Reply,
        head: bool = False,
        close: bool = False,
    ) -> bool:
        """Send `reply` (headers only for HEAD and 304); True if the connection stays open."""
        headers = [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Server", SERVER_HEADER),
            *conn.security_headers,
            *reply.headers,
        ]
        if reply.status != 304:
            headers.append(("Content-Length", str(len(reply.body))))
        if close:
            headers.append(("Connection", "close"))
        try:
            conn.send(
                h,
                h11.Response(
                    status_code=reply.status, headers=headers, reason=_phrase(reply.status)
                ),
            )
            if reply.body and not head and reply.status != 304:
                conn.send(h, h11.Data(data=reply.body))
            conn.send(h, h11.EndOfMessage())
        except h11.LocalProtocolError:
            return False
        return not close and h.our_state is h11.DONE


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
