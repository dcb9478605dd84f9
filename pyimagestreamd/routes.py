"""Routes: what each request gets, after the checks every request passes.

Between the HTTP connection (httpd.py, httploop.py) and the handlers. For each request head:
duplicate Host/Origin -> 400; a Host that is not ours -> 421 (DNS rebinding, access.py);
the route of its target (urls.py, which lists every path and spelling); `authorize`
(gate.py: accounts, sessions, share links, the local-only default; who opened each stream
is kept by streamaccess.py, which cuts it off when that access ends); then the handler: the
account routes (authapi.py), the settings API (controlapi.py), the browser client's files
(static.py), /api/state and /metrics (state.py, metrics.py), snapshots (snapshot.py),
MJPEG streams (mjpegpush.py) and WebSockets (websocket.py). Only GET and HEAD (405
otherwise), no request bodies (413), except the POSTs that change something (posts.py):
log in, log out, revoke a share link, and the settings API's. Every refusal is counted and
logged through the server's `refused` (one DEBUG line, never the request's bytes).
Event-loop thread only.
"""

from __future__ import annotations

import email.utils
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import h11

from pyimagestreamd import __version__, access, metrics, state
from pyimagestreamd.authapi import ACCOUNT_PATHS, CHANGE_PATHS, AccountAPI, classify
from pyimagestreamd.controlapi import ControlAPI
from pyimagestreamd.gate import Gate, Principal, Refusal
from pyimagestreamd.httpd import Connection
from pyimagestreamd.hub import Hub
from pyimagestreamd.mjpegpush import response_head, serve_mjpeg
from pyimagestreamd.posts import read_post
from pyimagestreamd.snapshot import snapshot
from pyimagestreamd.static import Reply, serve_file, text_reply
from pyimagestreamd.streamaccess import StreamAccess
from pyimagestreamd.urls import Route, match
from pyimagestreamd.websocket import serve_websocket

if TYPE_CHECKING:
    from pyimagestreamd.server import StreamServer

SERVER_HEADER = f"pyimagestreamd/{__version__}"


class Handler(Protocol):
    """What answers the requests of a connection (httpd.py): the Router, or the plain-HTTP
    redirect (redirect.py)."""

    async def handle(self, conn: Connection, h: h11.Connection, request: h11.Request) -> bool:
        """Answer one request; True if the connection may carry another one."""
        ...


class Router:
    """Checks and answers requests for one server."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.local_names = access.local_names()
        self.gate = Gate.from_config(server.config)
        # Who opened each stream, cut off when that access ends (streamaccess.py).
        self.streams = StreamAccess(server, self.gate)
        self.account_api = AccountAPI(
            self.gate, self.streams.revalidate, secure=lambda: server.tls is not None
        )
        self.control_api = ControlAPI(server)

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
            self.server.refused(conn.peer, "auth", f"{decision.status} {decision.text}")
            ctype = "text/html; charset=utf-8" if decision.html else "text/plain; charset=utf-8"
            body = (decision.html or decision.text + "\n").encode()
            extra = tuple(decision.headers.items())
            return Reply(decision.status, (("Content-Type", ctype), *extra), body)
        if route.kind in ("websocket", "stream"):
            self.streams.opened(conn, decision)
        return decision

    def front_door(
        self, conn: Connection, h: h11.Connection, request: h11.Request
    ) -> dict[str, str] | None:
        """The request's headers (lower-case names), or None once a refusal is sent: two
        Host or Origin headers (400), a Host that is not ours (421)."""
        self.server.stats.http_requests += 1
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1")
            if name in headers and name in ("host", "origin"):
                text = f"more than one {name} header"
                self.server.refused(conn.peer, "protocol_error", text)
                self.reply(conn, h, text_reply(400, text), close=True)
                return None
            headers[name] = raw_value.decode("latin-1")
        srv = self.server.config.server
        if not access.host_allowed(headers.get("host"), srv.allowed_hosts, self.local_names):
            host = headers.get("host", "")[:80]
            text = f"host {host!r} is not one of this server's names (server.allowed_hosts)"
            self.server.refused(conn.peer, "host", text)
            self.reply(conn, h, text_reply(421, text), close=True)
            return None
        return headers

    async def handle(self, conn: Connection, h: h11.Connection, request: h11.Request) -> bool:
        """Answer one request; True if the connection may carry another one."""
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
            self.server.refused(conn.peer, "method", f"{method[:16]} on a {route.kind} route")
            allow = "GET" if route.kind == "websocket" else "GET, HEAD"
            reply = text_reply(405, "method not allowed", ("Allow", allow))
            return self.reply(conn, h, reply, close=True)
        if not await conn.finish_request(h):
            self.server.refused(conn.peer, "oversize", "a request body where none is taken")
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
            reply = await snapshot(
                conn, runner.hub, self.server.stats, self.server.config.server.snapshot_timeout
            )
            return self.reply(conn, h, reply, head)
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
            self.server.refused(conn.peer, "method", f"{method[:16]} on an account route")
            reply = text_reply(405, "method not allowed", ("Allow", allow))
            return self.reply(conn, h, reply, close=True)
        if method == "POST":
            # Nothing is read from the body, but it is bounded as any POST's.
            body = await read_post(self.server, conn, h, headers, f"a POST to {route.path}")
            if isinstance(body, Reply):
                return self.reply(conn, h, body, close=True)
        elif not await conn.finish_request(h):
            self.server.refused(conn.peer, "oversize", "a request body where none is taken")
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
                text = "fps: expected a number 0.01..1000"
                self.server.refused(conn.peer, "protocol_error", text)
                return self.reply(conn, h, text_reply(400, text), head)
        limit = self.server.config.server.max_clients
        if not head and len(self.server.clients) >= limit:
            self.server.refused(conn.peer, "full", f"an MJPEG stream: {limit} clients already")
            self.server.warnings.warning(
                "full", "refused a client: %d clients already (server.max_clients)", limit
            )
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
