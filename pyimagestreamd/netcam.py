"""Network MJPEG source: an `http://` / `https://` MJPEG stream is a camera.

`NetworkSource` is the `CaptureSource` (camera.py) for IP cameras, ESP32-CAMs and another
pyimagestreamd's `/stream.mjpg` — the relay path: one upstream connection per camera,
however many viewers this daemon serves. Its hooks run in the camera's one capture
thread: `open()` connects (TLS for https, certificate verified), sends one GET with Basic
credentials when configured and reads the response head; `read()` receives with a bound,
lets h11 parse the HTTP framing (chunked or not) and cuts JPEGs out of the
multipart/x-mixed-replace body (mjpegsplit.py), each checked by mjpeg.py — or, for a URL
that answers one image/jpeg, asks again for each frame at `fps`; `close()` drops the
connection. camera.py does the rest: connected on the first viewer, closed after
`stop_delay`, reconnected with back-off when the upstream goes away or goes silent.

The keys are validated into `NetworkOptions` by netcamconfig.py (registered in sources.py).
Credentials never leave these two modules in clear: the configured URL is kept without its
user-info, the password is redacted in --dump-config, and only the user name is shown.
h11 is the HTTP parser (Debian's 0.14 in the .deb, 0.16 pinned for development): only API
both have is used (Connection, Request, Response, Data, EndOfMessage, NEED_DATA).
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import h11

from pyimagestreamd import __version__
from pyimagestreamd.camera import CameraError, CaptureSource
from pyimagestreamd.frame import Frame
from pyimagestreamd.mjpeg import MjpegChecker, checked_frame
from pyimagestreamd.mjpegsplit import StreamSplitter, max_frame_bytes
from pyimagestreamd.netcamconfig import NetworkOptions

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 16
# The response head must fit in this (h11 refuses a longer one): no camera needs more.
MAX_HEAD = 16 * 1024


class NetworkSource(CaptureSource):
    """One upstream MJPEG stream; the hooks run only in the capture thread."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        opts = config.options
        self.options = opts if isinstance(opts, NetworkOptions) else NetworkOptions()
        self.frame_timeout = self.options.frame_timeout
        self.url = urllib.parse.urlsplit(config.source)
        self._sock: socket.socket | None = None
        self._conn: h11.Connection | None = None
        self._splitter = StreamSplitter(max_frame_bytes(config.width, config.height))
        self._checker = MjpegChecker()
        self.connected_at: float | None = None
        self.requested_at = 0.0
        self._reopen_at = 0.0
        self.content_type = ""
        self.counters["frames_dropped_invalid"] = 0
        self.counters["connections"] = 0

    # -- hooks -----------------------------------------------------------------------------

    def open(self) -> None:
        self._request(quiet=False)

    def _request(self, quiet: bool) -> None:
        """Connect, send the GET and read the response head; CameraError if unusable."""
        url, opts = self.url, self.options
        where = self.config.source
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        self._splitter = StreamSplitter(self._splitter.max_frame)
        try:
            sock = socket.create_connection((host, port), timeout=opts.connect_timeout)
        except OSError as exc:
            raise CameraError(f"{where}: cannot connect: {exc.strerror or exc}") from None
        self._sock = sock
        self.counters["connections"] += 1
        try:
            if url.scheme == "https":
                self._sock = sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=host
                )
            self._conn = conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            headers = [
                ("Host", url.netloc),
                ("User-Agent", f"pyimagestreamd/{__version__}"),
                ("Accept", "multipart/x-mixed-replace, image/jpeg"),
            ]
            if opts.username is not None:
                token = f"{opts.username}:{opts.password or ''}".encode()
                headers.append(("Authorization", "Basic " + base64.b64encode(token).decode()))
            target = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
            sock.sendall(conn.send(h11.Request(method="GET", target=target, headers=headers)))
            sock.sendall(conn.send(h11.EndOfMessage()))
            response = self._response(sock, conn, time.monotonic() + opts.connect_timeout)
        except ssl.SSLError as exc:
            raise CameraError(f"{where}: TLS: {exc.reason or exc}") from None
        except TimeoutError:
            raise CameraError(f"{where}: no answer within {opts.connect_timeout:g} s") from None
        except OSError as exc:
            raise CameraError(f"{where}: {exc.strerror or exc}") from None
        except h11.RemoteProtocolError as exc:
            raise CameraError(f"{where}: not an HTTP answer ({exc})") from None
        status = response.status_code
        if status == 401:
            who = "wrong user name or password" if opts.username else "credentials required"
            raise CameraError(f"{where}: HTTP 401 Unauthorized: {who}")
        if status != 200:
            reason = response.reason.decode("latin-1", "replace")
            raise CameraError(f"{where}: HTTP {status} {reason}".rstrip())
        ctype = dict(response.headers).get(b"content-type", b"").decode("latin-1", "replace")
        if not ctype.lower().startswith(("multipart/", "image/jpeg")):
            raise CameraError(f"{where}: not an MJPEG stream (Content-Type: {ctype or 'none'})")
        self.content_type = ctype
        self.requested_at = time.monotonic()
        if not quiet:
            self.connected_at = self.requested_at
            log.info("camera %s: connected to %s (%s)", self.config.name, where, ctype)

    def _response(self, sock: socket.socket, conn: h11.Connection, deadline: float) -> h11.Response:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                return event
            if event is h11.NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(READ_CHUNK)
                conn.receive_data(data)
                if not data:
                    raise CameraError(f"{self.config.source}: connection closed before an answer")
            elif isinstance(event, h11.ConnectionClosed):
                raise CameraError(f"{self.config.source}: connection closed before an answer")
            # InformationalResponse (100 Continue): wait for the real one.

    @property
    def is_snapshot(self) -> bool:
        return self.content_type.lower().startswith("image/jpeg")

    def read(self, timeout: float) -> Frame | None:
        where = self.config.source
        deadline = time.monotonic() + timeout
        if self._sock is None:  # between two snapshots
            time.sleep(max(0.0, min(self._reopen_at - time.monotonic(), timeout)))
            if time.monotonic() < self._reopen_at:
                return None
            self._request(quiet=True)
        sock, conn = self._sock, self._conn
        assert sock is not None and conn is not None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise CameraError(f"{where}: bad HTTP framing ({exc})") from None
            if isinstance(event, h11.Data):
                jpegs = self._splitter.feed(bytes(event.data))
                frames = [f for j in jpegs if (f := checked_frame(self._checker, j, self.counters))]
                if frames:
                    self.counters["frames_dropped"] += len(frames) - 1
                    return frames[-1]
                continue
            if isinstance(event, h11.EndOfMessage) and self.is_snapshot:
                # A single-JPEG URL (a camera's snapshot.cgi): ask again, paced to fps.
                self._close_socket()
                wait = self.requested_at + 1 / self.config.fps - time.monotonic()
                if wait > deadline - time.monotonic():
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    self._reopen_at = self.requested_at + 1 / self.config.fps
                    return None
                time.sleep(max(0.0, wait))
                self._request(quiet=True)
                sock, conn = self._sock, self._conn
                assert sock is not None and conn is not None
                continue
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                raise CameraError(f"{where}: the stream ended")
            if event is not h11.NEED_DATA:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                data = sock.recv(READ_CHUNK)
            except TimeoutError:
                return None
            except OSError as exc:
                raise CameraError(f"{where}: {exc.strerror or exc}") from None
            conn.receive_data(data)

    def close(self) -> None:
        self._close_socket()
        self.connected_at = None

    def _close_socket(self) -> None:
        sock, self._sock, self._conn = self._sock, None, None
        if sock is not None:
            sock.close()

    # -- what the daemon shows -------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.config.source,
            "username": self.options.username,
            "mode": "passthrough",
            "format": "MJPG",
            "connected": self.connected_at is not None,
            "content_type": self.content_type,
            "frames": {**self._checker.counters(), **self._splitter.counters()},
        }

    def format_summary(self) -> str:
        width, height = self.last_size
        return f"{self.config.source}: MJPEG {width}x{height}, passthrough"
