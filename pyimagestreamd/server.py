"""Server: the one port that browsers and other clients talk to, built on websockets.

The end of the data flow: each WebSocket client pulls frames from its camera's hub, and
plain HTTP requests (the browser client's files, /snapshot.jpg, /api/state) are answered
from `process_request` before any WebSocket handshake.

Wire protocol (the same words open web/protocol.js):

- Original protocol (no subprotocol), compatible with the first PyImageStream client: every
  text message from the client is answered by exactly one binary message holding one JPEG,
  the newest frame that client has not seen yet.
- Protocol 2 (subprotocol "pyimagestream.v2"): the client sends {"type": "next"} for each
  frame it wants (up to `window` outstanding), {"type": "pause"} / {"type": "resume"} when
  it stops / starts watching. The server sends {"type": "hello", ...} first, then
  {"type": "state", ...} on every camera state change, and for each credit one binary
  message: a 4-byte big-endian length N, N bytes of JSON metadata (camera, seq, time, age,
  width, height, offline), then the JPEG.

A slow client is served at its own pace from the latest-frame slot: it gets fewer frames,
never a queue, and never delays another client. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import mimetypes
import struct
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from pyimagestreamd import __version__
from pyimagestreamd.camera import CameraState
from pyimagestreamd.config import Config
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub
from pyimagestreamd.runner import CameraRunner

log = logging.getLogger(__name__)

SUBPROTOCOL = Subprotocol("pyimagestream.v2")
# Most frame requests a protocol-2 client may have outstanding: enough to fill a long
# fat link, small enough that a stalled client holds little.
MAX_WINDOW = 8
# Clients only send tiny control messages: anything bigger is hostile or broken.
MAX_MESSAGE_SIZE = 1024
WS_PREFIX = "/websocket"

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_UNKNOWN_CAMERA = 4404

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}


class ClientProtocolError(Exception):
    """A client broke protocol 2; the message is sent to it before closing."""


def _response(
    status: HTTPStatus,
    body: bytes,
    content_type: str,
    *,
    head: bool = False,
    extra: Mapping[str, str] | None = None,
) -> Response:
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    # websockets answers one HTTP request per connection: say so, so clients don't reuse it.
    headers["Connection"] = "close"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status.value, status.phrase, headers, b"" if head else body)


def _text(status: HTTPStatus, text: str, *, head: bool = False, **extra: str) -> Response:
    return _response(
        status, (text + "\n").encode(), "text/plain; charset=utf-8", head=head, extra=extra
    )


class StreamServer:
    """Serves every camera's hub over WebSocket and the HTTP side routes."""

    def __init__(self, config: Config, runners: Mapping[str, CameraRunner], web_root: Path) -> None:
        self.config = config
        self.runners = runners
        self.web_root = web_root
        self.started_at = time.monotonic()
        # Every open WebSocket and the camera it watches.
        self.clients: dict[ServerConnection, str] = {}
        self.counters = {"connections": 0, "rejected": 0, "http_requests": 0}
        self._server: Server | None = None
        self._closing: set[asyncio.Future[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket(s); returns when clients can connect."""
        srv = self.config.server
        self._server = await serve(
            self._handle,
            srv.listen,
            srv.port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            # JPEG does not deflate: permessage-deflate would cost ~60x CPU for nothing.
            compression=None,
            max_size=MAX_MESSAGE_SIZE,
            # Control messages are tiny; a hostile client must not make us buffer much.
            max_queue=16,
            server_header=f"pyimagestreamd/{__version__}",
        )
        log.info("listening on %s", ", ".join(self.addresses))

    @property
    def addresses(self) -> list[str]:
        assert self._server is not None
        out = []
        for sock in self._server.sockets:
            host, port = sock.getsockname()[:2]
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, close every connection with 1001 (going away), wait for handlers."""
        if self._server is None:
            return
        # websockets stops accepting, answers half-open handshakes with 503, closes open
        # connections with 1001, then waits for every handler (they all await recv() or
        # wait_closed(), so they return at once).
        self._server.close(close_connections=True, reason="server shutting down")
        await self._server.wait_closed()

    def set_config(self, config: Config) -> None:
        """Take a reloaded configuration (origins, limits); the listening socket stays."""
        self.config = config

    def disconnect_camera(self, name: str) -> None:
        """Close the connections of a camera that a reload removed."""
        for ws, camera in list(self.clients.items()):
            if camera == name:
                task = asyncio.ensure_future(
                    ws.close(CLOSE_UNKNOWN_CAMERA, f"camera {name} was removed")
                )
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    # -- HTTP ------------------------------------------------------------------------------

    def _select_subprotocol(
        self, conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # Without our subprotocol the client speaks the original protocol: never refuse it.
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    def _origin_allowed(self, request: Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: origin checks protect browsers' users only
        origin = origin.rstrip("/")
        if origin in self.config.server.allowed_origins:
            return True
        host = request.headers.get("Host", "")
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc.lower() == host.lower()

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == WS_PREFIX or path.startswith(WS_PREFIX + "/"):
            if request.method != "GET":
                return _text(HTTPStatus.METHOD_NOT_ALLOWED, "WebSocket needs GET", Allow="GET")
            if not self._origin_allowed(request):
                self.counters["rejected"] += 1
                log.warning("rejected WebSocket from origin %s", request.headers.get("Origin"))
                return _text(HTTPStatus.FORBIDDEN, "origin not allowed")
            return None  # on to the WebSocket handshake
        self.counters["http_requests"] += 1
        if request.method not in ("GET", "HEAD"):
            return _text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", Allow="GET, HEAD")
        head = request.method == "HEAD"
        if path == "/api/state":
            body = json.dumps(self.state(), indent=1).encode()
            return _response(
                HTTPStatus.OK,
                body,
                "application/json",
                head=head,
                extra={"Cache-Control": "no-store"},
            )
        if path == "/snapshot.jpg":
            return await self._snapshot(self.config.cameras[0].name, head)
        if path.startswith("/snapshot/") and path.endswith(".jpg"):
            return await self._snapshot(unquote(path[len("/snapshot/") : -len(".jpg")]), head)
        return self._static(path, head)

    def _static(self, path: str, head: bool) -> Response:
        rel = unquote(path).lstrip("/") or "index.html"
        parts = rel.split("/")
        # Only plain names below web_root: no "..", no hidden files, no backslashes or NULs.
        if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
            return _text(HTTPStatus.NOT_FOUND, "not found", head=head)
        target = self.web_root.joinpath(*parts)
        try:
            resolved = target.resolve(strict=True)
            resolved.relative_to(self.web_root.resolve())  # a symlink out of web/ is not served
            if not resolved.is_file():
                raise FileNotFoundError
            body = resolved.read_bytes()
        except (OSError, ValueError):
            return _text(HTTPStatus.NOT_FOUND, "not found", head=head)
        ctype = CONTENT_TYPES.get(resolved.suffix.lower()) or (
            mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        )
        # no-cache: browsers revalidate, so a daemon upgrade is picked up on the next load.
        return _response(HTTPStatus.OK, body, ctype, head=head, extra={"Cache-Control": "no-cache"})

    async def _snapshot(self, name: str, head: bool) -> Response:
        runner = self.runners.get(name)
        if runner is None:
            return _text(HTTPStatus.NOT_FOUND, f"unknown camera {name!r}", head=head)
        hub = runner.hub
        timeout = self.config.server.snapshot_timeout
        hub.add_viewer()  # wakes a sleeping camera; the stop delay applies afterwards
        try:
            frame = hub.latest
            if frame is None or hub.state not in (CameraState.LIVE, CameraState.OFFLINE):
                seq = frame.seq if frame is not None else 0
                frame = await asyncio.wait_for(hub.next_after(seq), timeout)
        except TimeoutError:
            reason = hub.reason or f"no frame within {timeout:g} s"
            return _text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"camera {name} {hub.state.value}: {reason}",
                head=head,
                **{"Retry-After": "5"},
            )
        finally:
            hub.remove_viewer()
        hub.frames_sent += 1
        return _response(
            HTTPStatus.OK,
            frame.jpeg,
            "image/jpeg",
            head=head,
            extra={
                "Cache-Control": "no-store",
                "X-Frame-Seq": str(frame.seq),
                "X-Frame-Time": f"{frame.wall_time:.3f}",
            },
        )

    def state(self) -> dict[str, Any]:
        """Everything /api/state reports: cameras, their state, formats, viewers, counters."""
        now = time.monotonic()
        cameras = []
        for cam in self.config.cameras:
            runner = self.runners.get(cam.name)
            if runner is None:
                continue
            hub, source = runner.hub, runner.source
            latest = hub.latest
            cameras.append({
                "name": cam.name,
                "state": hub.state.value,
                "reason": hub.reason,
                "width": latest.width if latest else cam.width,
                "height": latest.height if latest else cam.height,
                "fps": cam.fps,
                "measured_fps": round(hub.measured_fps, 2),
                "viewers": hub.viewers,
                "capturing": source.is_running,
                "latest_seq": latest.seq if latest else 0,
                "latest_age": round(now - latest.captured_at, 3) if latest else None,
                "frames_published": hub.frames_published,
                "frames_sent": hub.frames_sent,
                **source.counters,
                "format": source.describe(),
            })  # fmt: skip
        return {
            "version": __version__,
            "uptime": round(now - self.started_at, 3),
            "clients": len(self.clients),
            "max_clients": self.config.server.max_clients,
            **self.counters,
            "cameras": cameras,
        }

    # -- WebSocket -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path = unquote(urlsplit(ws.request.path).path)
        name = path[len(WS_PREFIX) + 1 :] if path.startswith(WS_PREFIX + "/") else ""
        runner = self.runners.get(name or self.config.cameras[0].name)
        if runner is None:
            self.counters["rejected"] += 1
            await ws.close(CLOSE_UNKNOWN_CAMERA, f"unknown camera {name[:64]!r}")
            return
        limit = self.config.server.max_clients
        if len(self.clients) >= limit:
            self.counters["rejected"] += 1
            log.warning("refused a client: %d clients already (server.max_clients)", limit)
            await ws.close(CLOSE_TRY_AGAIN, f"server full: {limit} clients")
            return
        self.clients[ws] = runner.name
        self.counters["connections"] += 1
        hub = runner.hub
        proto = 2 if ws.subprotocol == SUBPROTOCOL else 1
        peer = ws.remote_address[0] if ws.remote_address else "?"
        log.info(
            "client %s connected to %s (protocol %d), %d clients",
            peer,
            hub.name,
            proto,
            len(self.clients),
        )
        try:
            if proto == 2:
                await _ProtocolV2(ws, runner, self.config).run()
            else:
                await self._serve_original(ws, runner)
        except (ConnectionClosed, _ClientGoneError):
            pass
        finally:
            self.clients.pop(ws, None)
            log.info(
                "client %s disconnected from %s, %d clients", peer, hub.name, len(self.clients)
            )

    async def _serve_original(self, ws: ServerConnection, runner: CameraRunner) -> None:
        hub = runner.hub
        hub.add_viewer()
        # Waiting for a frame must end when the client leaves (or the daemon stops), or a
        # handler of a stalled camera would hold its viewer forever: race it with this.
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            last = 0
            async for message in ws:
                if not isinstance(message, str):
                    await ws.close(CLOSE_UNSUPPORTED, "send text messages to request frames")
                    return
                frame = await _frame_after(hub, last, closed)
                await ws.send(frame.jpeg)
                last = frame.seq
                hub.frames_sent += 1
        finally:
            closed.cancel()
            hub.remove_viewer()


async def _frame_after(hub: Hub, seq: int, closed: asyncio.Future[None]) -> Frame:
    """The newest frame above `seq`; raise _ClientGoneError if `closed` completes first."""
    while True:
        frame = hub.latest
        if frame is not None and frame.seq > seq:
            return frame
        # asyncio.wait on plain futures creates no task and cancels nothing: cheap enough
        # for every frame, and the shared change future stays untouched.
        pending: set[asyncio.Future[None]] = {hub.change_future(), closed}
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if closed.done():
            raise _ClientGoneError


class _ClientGoneError(Exception):
    """The connection closed while its handler waited for a frame."""


class _ProtocolV2:
    """One protocol-2 connection: credits, pause/resume, state messages."""

    def __init__(self, ws: ServerConnection, runner: CameraRunner, config: Config) -> None:
        self.ws = ws
        self.hub = runner.hub
        self.config = config
        self.credits = 0
        self.last_seq = 0
        self.watching = False
        self.reported_version = -1

    async def run(self) -> None:
        hub = self.hub
        await self._send_json({
            "type": "hello",
            "protocol": 2,
            "camera": hub.name,
            "cameras": [c.name for c in self.config.cameras],
            "window": MAX_WINDOW,
            "state": hub.state.value,
            "reason": hub.reason,
        })  # fmt: skip
        self.reported_version = hub.state_version
        self._watch(True)
        receiving: asyncio.Task[str | bytes] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.ensure_future(self.ws.recv())
                if hub.state_version != self.reported_version:
                    self.reported_version = hub.state_version
                    await self._send_json(
                        {
                            "type": "state",
                            "camera": hub.name,
                            "state": hub.state.value,
                            "reason": hub.reason,
                        }
                    )
                    continue
                latest = hub.latest
                if self.credits > 0 and latest is not None and latest.seq > self.last_seq:
                    await self._send_frame(latest)
                    continue
                # Taken right after the checks above, so no change slips in between; shielded,
                # because cancelling our wait must not cancel the future all clients share.
                waiting = asyncio.shield(hub.change_future())
                pending: set[asyncio.Future[Any]] = {receiving, waiting}
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if waiting not in done:
                    waiting.cancel()
                if receiving in done:
                    message = receiving.result()  # ConnectionClosed ends the connection
                    receiving = None
                    try:
                        self._handle_message(message)
                    except ClientProtocolError as exc:
                        log.warning("client %s: protocol error: %s", self._peer, exc)
                        await self._send_json({"type": "error", "message": str(exc)})
                        await self.ws.close(CLOSE_POLICY, str(exc)[:120])
                        return
        finally:
            if receiving is not None:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await receiving
            self._watch(False)

    @property
    def _peer(self) -> str:
        return str(self.ws.remote_address[0]) if self.ws.remote_address else "?"

    def _watch(self, watching: bool) -> None:
        if watching and not self.watching:
            self.hub.add_viewer()
        elif not watching and self.watching:
            self.hub.remove_viewer()
        self.watching = watching

    def _handle_message(self, message: str | bytes) -> None:
        if not isinstance(message, str):
            raise ClientProtocolError("binary messages are not part of protocol 2")
        try:
            data = json.loads(message)
        except ValueError:
            raise ClientProtocolError("messages must be JSON objects") from None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "next":
            if self.credits >= MAX_WINDOW:
                raise ClientProtocolError(f"more than {MAX_WINDOW} frame requests outstanding")
            self.credits += 1
            self._watch(True)  # a request is as good as a resume
        elif kind == "pause":
            self.credits = 0
            self._watch(False)
        elif kind == "resume":
            self._watch(True)
        else:
            raise ClientProtocolError(f"unknown message type {str(kind)[:40]!r}")

    async def _send_json(self, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(data))

    async def _send_frame(self, frame: Frame) -> None:
        meta = json.dumps({
            "camera": self.hub.name,
            "seq": frame.seq,
            "time": round(frame.wall_time, 3),
            "age": round(max(0.0, time.monotonic() - frame.captured_at), 4),
            "width": frame.width,
            "height": frame.height,
            "offline": frame.is_placeholder,
        }).encode()  # fmt: skip
        self.credits -= 1
        self.last_seq = frame.seq
        await self.ws.send(struct.pack(">I", len(meta)) + meta + frame.jpeg)
        self.hub.frames_sent += 1
