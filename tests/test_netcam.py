"""The network MJPEG source against real HTTP servers on loopback: an MJPEG camera stand-in
with Basic authentication written here (the upstream), a real daemon and real clients."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from conftest import deadline, pull_in_turn, timeout, ws_connect

from pyimagestreamd import encoder
from pyimagestreamd.testpattern import TestPattern

SECRET = "s3cret-pw"


def frames(n: int) -> list[bytes]:
    pattern = TestPattern(64, 48, "up")
    return [encoder.encode_planes(pattern.draw(i, 0.0), 80) for i in range(n)]


class MultipartServer:
    """A camera's MJPEG endpoint: multipart/x-mixed-replace, Basic auth, counts its clients."""

    def __init__(self, jpegs: list[bytes], user: str, password: str, fps: float = 25) -> None:
        self.jpegs, self.fps = jpegs, fps
        self.token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.port = 0
        self.connections = 0
        self.active = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if f"Authorization: Basic {self.token}".encode() not in head:
                self.refused += 1
                writer.write(
                    b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return
            self.active += 1
            if head.startswith(b"GET /snapshot.jpg "):
                jpeg = self.jpegs[self.active % len(self.jpegs)]
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                    % len(jpeg)
                    + jpeg
                )
                await writer.drain()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n"
                b"Connection: close\r\n\r\n"
            )
            i = 0
            while True:
                jpeg = self.jpegs[i % len(self.jpegs)]
                i += 1
                writer.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    + jpeg
                    + b"\r\n"
                )
                await writer.drain()
                await asyncio.sleep(1 / self.fps)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            if (self.active and writer.transport.is_closing()) or True:
                pass
            writer.close()


@pytest.fixture
async def upstream() -> Any:
    server = MultipartServer(frames(10), "relay", SECRET)
    await server.start()
    yield server
    await server.stop()


def camera(url: str, **keys: Any) -> str:
    settings = {"source": url, "width": 64, "height": 48, "stop_delay": 0.3,
                "frame_timeout": 2.0, "connect_timeout": 2.0, **keys}  # fmt: skip
    return "cameras:\n  relay: " + json.dumps(settings) + "\n"


async def test_frames_pass_through_once_upstream_and_credentials_never_show(
    start_daemon: Any, upstream: MultipartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Three viewers, one upstream connection; JPEGs byte-identical; the password nowhere."""
    caplog.set_level(logging.DEBUG)
    url = f"http://relay:{SECRET}@127.0.0.1:{upstream.port}/video?x=1"
    rd = await start_daemon(camera(url))
    served = set(upstream.jpegs)
    async with (
        ws_connect(rd, "/websocket/relay") as a,
        ws_connect(rd, "/websocket/relay") as b,
        ws_connect(rd, "/websocket/relay") as c,
    ):
        assert set(await pull_in_turn((a, b, c), 8)) <= served
        assert (upstream.connections, upstream.active) == (1, 1)
        cam = await rd.camera_state("relay")
        assert cam["viewers"] == 3
        state_text = json.dumps(await rd.state())
    # On demand: the upstream connection is closed once the camera sleeps.
    await rd.wait_camera("relay", lambda c: c["state"] == "sleeping")
    async with deadline(5):
        while upstream.open_connections:
            await asyncio.sleep(0.05)
    assert cam["format"]["source"] == f"http://127.0.0.1:{upstream.port}/video?x=1"
    assert cam["format"]["username"] == "relay"
    dumped = json.dumps(rd.daemon.config.to_dict())
    for text in (state_text, dumped, caplog.text):
        assert SECRET not in text
    assert '"password": "***"' in dumped


async def test_wrong_password_is_offline_with_a_reason_and_no_secret(
    start_daemon: Any, upstream: MultipartServer
) -> None:
    """401 from the upstream: offline with a one-line reason; the password is not in it."""
    rd = await start_daemon(
        camera(f"http://127.0.0.1:{upstream.port}/video", username="relay", password="wrong-pw")
    )
    async with ws_connect(rd, "/websocket/relay") as ws:
        await ws.send("x")
        cam = await rd.wait_camera("relay", lambda c: c["state"] == "offline")
    assert cam["reason"] == (
        f"http://127.0.0.1:{upstream.port}/video: HTTP 401 Unauthorized: wrong user name or password"
    )
    assert upstream.refused >= 1 and upstream.active == 0


async def test_upstream_that_goes_away_and_comes_back_is_followed(
    start_daemon: Any, upstream: MultipartServer
) -> None:
    """The upstream stops: offline; it comes back on the same port: live again by itself."""
    rd = await start_daemon(camera(f"http://relay:{SECRET}@127.0.0.1:{upstream.port}/"))
    async with ws_connect(rd, "/websocket/relay") as ws:
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), timeout(10))
        await rd.wait_camera("relay", lambda c: c["state"] == "live")
        await upstream.stop()
        cam = await rd.wait_camera("relay", lambda c: c["state"] == "offline")
        assert cam["reason"].startswith(f"http://127.0.0.1:{upstream.port}/: ")
        await upstream.start()
        await rd.wait_camera("relay", lambda c: c["state"] == "live")
        assert upstream.active == 2


async def test_a_snapshot_url_is_polled_at_the_camera_fps(
    start_daemon: Any, upstream: MultipartServer
) -> None:
    """A URL that answers one image/jpeg is asked again for each frame, paced to fps."""
    rd = await start_daemon(
        camera(f"http://relay:{SECRET}@127.0.0.1:{upstream.port}/snapshot.jpg", fps=10)
    )
    seen = []
    loop = asyncio.get_running_loop()
    async with ws_connect(rd, "/websocket/relay") as ws:
        started = loop.time()
        for _ in range(8):
            await ws.send("x")
            seen.append(await asyncio.wait_for(ws.recv(), timeout(10)))
        took = loop.time() - started
        requests = upstream.active
    assert set(seen) <= set(upstream.jpegs)
    assert len(set(seen)) >= 4  # new pictures, not the first one again
    # Paced: no more requests than 10 a second allow (plus the first and one in flight).
    assert requests <= 10 * took + 2, (requests, took)
    cam = await rd.camera_state("relay")
    assert cam["format"]["content_type"] == "image/jpeg"
