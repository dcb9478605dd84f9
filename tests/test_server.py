"""The server over real sockets: both pull protocols, HTTP routes, limits and hostile input."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    RunningDaemon,
    check_jpeg,
    deadline,
    recv_v2_frame,
    timeout,
    ws_connect,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

FAST = "cameras:\n  cam:\n    width: 320\n    height: 240\n    fps: 100\n    stop_delay: 0.3\n"
TWO = FAST + "  other:\n    width: 160\n    height: 120\n    fps: 50\n"


async def test_original_protocol_client_pulls_100_distinct_jpegs(start_daemon: Any) -> None:
    """Each text message is answered by exactly one binary JPEG; no frame comes twice."""
    rd = await start_daemon(FAST)
    seen = set()
    async with ws_connect(rd) as ws, deadline(30):
        for _ in range(100):
            await ws.send("next")
            data = await ws.recv()
            check_jpeg(data, 320, 240)
            seen.add(data)
        # Exactly one answer per request: nothing else is pending.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
    assert len(seen) == 100


async def test_protocol_2_client_pulls_100_frames_with_metadata(start_daemon: Any) -> None:
    """Protocol 2: hello, then one frame per credit with metadata, seq strictly increasing."""
    rd = await start_daemon(TWO)
    async with ws_connect(rd, "/websocket/other", v2=True) as ws, deadline(30):
        assert ws.subprotocol == "pyimagestream.v2"
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        assert hello["camera"] == "other"
        assert hello["cameras"] == ["cam", "other"]
        window = hello["window"]
        assert 2 <= window <= 16
        for _ in range(4):
            await ws.send('{"type": "next"}')
        last = 0
        for i in range(100):
            meta, jpeg = await recv_v2_frame(ws)
            check_jpeg(jpeg, 160, 120)
            assert meta["camera"] == "other"
            assert meta["seq"] > last
            assert (meta["width"], meta["height"]) == (160, 120)
            assert meta["offline"] is False
            assert 0 <= meta["age"] < timeout(2)
            assert meta["time"] > 1.7e9
            last = meta["seq"]
            if i < 96:
                await ws.send('{"type": "next"}')


async def test_protocol_2_reports_state_changes(start_daemon: Any) -> None:
    """A protocol-2 client is told starting/live, and sleeping after pausing past the delay."""
    from pyimagestreamd.frame import Frame
    from pyimagestreamd.testpattern import TestPatternSource

    class SlowStartSource(TestPatternSource):
        """The test pattern, 0.3 s from open to its first frame (as a real camera takes)."""

        def open(self) -> None:
            super().open()
            self._first = True

        def read(self, timeout: float) -> Frame | None:
            if getattr(self, "_first", False):
                self._first = False
                time.sleep(0.3)
            return super().read(timeout)

    rd = await start_daemon(FAST, source_factory=SlowStartSource)
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(20):
        states = [json.loads(await ws.recv())["state"]]
        await ws.send('{"type": "next"}')
        while states[-1] != "live":
            msg = await ws.recv()
            if isinstance(msg, str):
                states.append(json.loads(msg)["state"])
        await ws.send('{"type": "pause"}')
        while states[-1] != "sleeping":
            msg = await ws.recv()
            if isinstance(msg, str):
                states.append(json.loads(msg)["state"])
        # hello says "sleeping"; the first request wakes the camera, which must be announced
        # as starting before it is live (not only as live).
        assert states[:3] == ["sleeping", "starting", "live"], states
        await ws.send('{"type": "resume"}')
        await ws.send('{"type": "next"}')
        _meta, jpeg = await recv_v2_frame(ws)
        check_jpeg(jpeg, 320, 240)


async def test_protocol_2_request_for_a_frame_already_there_is_answered_at_once(
    start_daemon: Any,
) -> None:
    """A "next" sent when the newest frame is one the client lacks gets it, with no new frame."""
    import threading

    from pyimagestreamd.frame import Frame
    from pyimagestreamd.testpattern import TestPatternSource

    released = threading.Semaphore(0)

    class OnCue(TestPatternSource):
        """The test pattern, one frame per release() by the test."""

        def read(self, timeout: float) -> Frame | None:
            return super().read(timeout) if released.acquire(timeout=timeout) else None

    rd = await start_daemon(FAST, source_factory=OnCue)
    hub = rd.daemon.runners["cam"].hub
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(20):
        await ws.recv()  # hello
        await ws.send('{"type": "next"}')
        released.release()
        first, _ = await recv_v2_frame(ws)
        # The next frame arrives while the client has no credit; then it asks, once.
        released.release()
        while hub.latest is None or hub.latest.seq <= first["seq"]:
            await asyncio.sleep(0.01)
        await ws.send('{"type": "next"}')
        # At once, not when the camera next changes (here: offline after its 5 s without a
        # frame, which would wake the handler too).
        second, _ = await asyncio.wait_for(recv_v2_frame(ws), timeout(2))
        assert (second["seq"], second["offline"]) == (first["seq"] + 1, False)


async def test_camera_stops_after_delay_and_restarts_on_demand(start_daemon: Any) -> None:
    """Capture starts with the first viewer, stops stop_delay after the last, restarts on demand."""
    rd = await start_daemon(FAST)
    cam = await rd.camera_state("cam")
    assert (cam["state"], cam["capturing"], cam["captures_started"]) == ("sleeping", False, 0)
    async with ws_connect(rd) as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
        cam = await rd.camera_state("cam")
        assert (cam["state"], cam["capturing"], cam["captures_started"], cam["viewers"]) == (
            "live",
            True,
            1,
            1,
        )
    await asyncio.sleep(0.1)
    cam = await rd.camera_state("cam")
    assert cam["capturing"], "stopped before stop_delay"
    async with deadline(10):
        # The thread ends (capturing false) a moment before the runner sets "sleeping".
        while (cam := await rd.camera_state("cam"))["capturing"] or cam["state"] != "sleeping":
            await asyncio.sleep(0.05)
    assert (cam["state"], cam["captures_stopped"], cam["viewers"]) == ("sleeping", 1, 0)
    async with ws_connect(rd) as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
    cam = await rd.camera_state("cam")
    assert cam["captures_started"] == 2


async def test_viewer_returning_within_stop_delay_keeps_camera_running(start_daemon: Any) -> None:
    """Reconnecting before stop_delay ends does not stop and restart the camera."""
    rd = await start_daemon(FAST.replace("stop_delay: 0.3", "stop_delay: 2"))
    for _ in range(3):
        async with ws_connect(rd) as ws:
            await ws.send("x")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
    cam = await rd.camera_state("cam")
    assert (cam["captures_started"], cam["captures_stopped"], cam["capturing"]) == (1, 0, True)


async def test_api_state_reports_cameras_and_counters(start_daemon: Any) -> None:
    """/api/state is JSON with every camera's state, size, fps, viewers and counters."""
    rd = await start_daemon(TWO)
    status, headers, body = await rd.get("/api/state")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    state = json.loads(body)
    assert [c["name"] for c in state["cameras"]] == ["cam", "other"]
    cam = state["cameras"][0]
    for key in ("state", "reason", "width", "height", "fps", "measured_fps", "viewers",
                "frames_published", "frames_sent", "frames_captured", "frames_dropped",
                "captures_started", "captures_stopped", "format"):  # fmt: skip
        assert key in cam
    assert (cam["width"], cam["height"], cam["fps"]) == (320, 240, 100)


async def test_snapshot_wakes_camera_and_returns_jpeg(start_daemon: Any) -> None:
    """/snapshot.jpg starts the sleeping camera and returns its newest frame; HEAD has no body."""
    rd = await start_daemon(TWO)
    status, headers, body = await rd.get("/snapshot.jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    check_jpeg(body, 320, 240)
    status, _, body = await rd.get("/snapshot/other.jpg")
    assert status == 200
    check_jpeg(body, 160, 120)
    status, headers, body = await rd.get("/snapshot/other.jpg", method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) > 100
    status, _, body = await rd.get("/snapshot/nope.jpg")
    assert status == 404
    assert b"unknown camera" in body


async def test_static_files_with_types_head_and_404(start_daemon: Any, tmp_path: Path) -> None:
    """Files of web_root are served with the right types; missing files and folders are 404."""
    web = tmp_path / "web"
    (web / "sub").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    (web / "app.js").write_text("export {};")
    (web / "sub" / "s.css").write_text("body{}")
    (web / ".hidden").write_text("secret")
    rd = await start_daemon(f"server: {{listen: 127.0.0.1, port: 0, web_root: {web}}}\n" + FAST)
    for path, ctype in (("/", "text/html"), ("/index.html", "text/html"),
                        ("/app.js", "text/javascript"), ("/sub/s.css", "text/css")):  # fmt: skip
        status, headers, _ = await rd.get(path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(ctype)
    status, headers, body = await rd.get("/", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (
        200,
        b"",
        str(len("<!doctype html><title>t</title>")),
    )
    for path in ("/sub", "/sub/", "/missing.js", "/.hidden"):
        assert (await rd.get(path))[0] == 404, path
    assert (await rd.get("/", method="POST"))[0] == 405
    assert (await rd.get("/", method="DELETE"))[0] == 405


def raw_http(port: int, request: bytes, half_close: bool = False) -> bytes:
    """Send raw bytes to the daemon and read the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(request)
        if half_close:  # a client that sends junk and then nothing more
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "path",
    ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/sub/../../../etc/passwd",
     "/..%2f..%2fetc%2fpasswd", "/%2fetc%2fpasswd", "//etc/passwd", "/web/..%5c..%5cetc/passwd",
     "/index.html%00.js"],
)  # fmt: skip
async def test_path_traversal_is_refused(start_daemon: Any, path: str) -> None:
    """No request path reaches a file outside web_root."""
    rd = await start_daemon(FAST)
    answer = await asyncio.to_thread(
        raw_http,
        rd.port,
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 404"), answer[:80]
    assert b"root:" not in answer


async def test_hostile_input_gets_clean_errors_and_daemon_keeps_serving(start_daemon: Any) -> None:
    """Oversized, binary, unknown and excess messages each end only that connection, cleanly."""
    rd = await start_daemon(TWO)

    async def close_code(path: str, v2: bool, message: str | bytes) -> int | None:
        async with ws_connect(rd, path, v2=v2) as ws:
            if v2:
                await ws.recv()  # hello
            await ws.send(message)
            with pytest.raises(ConnectionClosed):
                async with deadline(10):
                    while True:
                        await ws.recv()
            assert ws.close_code is not None
            return ws.close_code

    assert await close_code("/websocket", False, "x" * 5000) == 1009
    assert await close_code("/websocket", False, b"\x00\xff garbage") == 1003
    assert await close_code("/websocket/cam", True, b"\x00\xff garbage") == 1008
    assert await close_code("/websocket/cam", True, "not json") == 1008
    assert await close_code("/websocket/cam", True, '{"type": "rm -rf"}') == 1008
    assert await close_code("/websocket/cam", True, "[1, 2]") == 1008
    assert await close_code("/websocket/cam", True, "x" * 100_000) == 1009

    # Credits only pile up while no new frame exists: use a 1 fps camera, right after a frame.
    slow = await start_daemon("cameras:\n  slow: {width: 64, height: 48, fps: 1}\n")
    async with ws_connect(slow, "/websocket/slow", v2=True) as ws:
        await ws.recv()
        await ws.send('{"type": "next"}')
        await recv_v2_frame(ws)
        for _ in range(9):  # the window is 8
            await ws.send('{"type": "next"}')
        with pytest.raises(ConnectionClosed):
            async with deadline(10):
                while True:
                    await ws.recv()
        assert ws.close_code == 1008

    async with ws_connect(rd, "/websocket/nope") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout(10))
        assert ws.close_code == 4404

    # Not HTTP at all, a request line without headers, a truncated handshake.
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
                 b"GET\r\n\r\n", b"GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"):  # fmt: skip
        answer = await asyncio.to_thread(raw_http, rd.port, junk, True)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]

    # A client that leaves in the middle of receiving a frame.
    for _ in range(3):
        ws = await ws_connect(rd, "/websocket/cam")
        await ws.send("x")
        ws.transport.abort()  # type: ignore[attr-defined]

    # After all that, a well-behaved client is served as before.
    async with ws_connect(rd, "/websocket/cam") as ws:
        for _ in range(10):
            await ws.send("x")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)), 320, 240)
    state = await rd.state()
    assert state["clients"] == 1 or state["clients"] == 0


async def test_cross_origin_websocket_is_refused_unless_allowed(start_daemon: Any) -> None:
    """A browser page from another origin cannot open a WebSocket unless allow-listed."""
    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, allowed_origins: ['https://ok.example']}\n" + FAST
    )
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(rd, origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    async with ws_connect(rd, origin=f"http://127.0.0.1:{rd.port}") as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
    async with ws_connect(rd, origin="https://ok.example") as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))


async def test_client_limit_closes_extra_client_with_reason(start_daemon: Any) -> None:
    """One client over server.max_clients is closed with 1013 and a reason; others go on."""
    rd = await start_daemon("server: {listen: 127.0.0.1, port: 0, max_clients: 2}\n" + FAST)
    async with ws_connect(rd) as a, ws_connect(rd) as b:
        await a.send("x")
        await a.recv()
        async with ws_connect(rd) as c:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(c.recv(), timeout(10))
            assert c.close_code == 1013
            assert c.close_reason == "server full: 2 clients"
        await b.send("x")
        check_jpeg(await asyncio.wait_for(b.recv(), timeout(10)))


async def test_stop_closes_clients_with_going_away(start_daemon: Any) -> None:
    """Stopping the daemon closes WebSockets with 1001 and the run returns 0."""
    rd: RunningDaemon = await start_daemon(FAST)
    async with ws_connect(rd) as ws:
        await ws.send("x")
        await ws.recv()
        waiting = asyncio.ensure_future(ws.send("x"))
        await waiting
        assert await rd.stop() == 0
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), timeout(5))
        assert ws.close_code == 1001


async def test_snapshot_of_a_camera_without_frames_is_503_with_reason(start_daemon: Any) -> None:
    """A camera that delivers nothing: /snapshot.jpg answers 503 with the state after the timeout."""
    from pyimagestreamd.frame import Frame
    from pyimagestreamd.testpattern import TestPatternSource

    class SilentSource(TestPatternSource):
        """Opens fine, never delivers a frame (a unit-level stand-in for a mute camera)."""

        def read(self, timeout: float) -> Frame | None:
            time.sleep(timeout)
            return None

    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, snapshot_timeout: 0.5}\ncameras:\n  mute: {}\n",
        source_factory=SilentSource,
    )
    status, headers, body = await rd.get("/snapshot.jpg")
    assert status == 503
    assert body == b"camera mute starting: no frame within 0.5 s\n"
    assert headers["Retry-After"] == "5"


def test_double_colon_without_ipv6_listens_on_ipv4_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the machine has no IPv6, "::" binds every IPv4 address instead, with one line."""
    import errno
    import logging

    from pyimagestreamd.listeners import bind

    real = socket.socket

    def no_ipv6(family: int = socket.AF_INET, *args: Any, **kwargs: Any) -> socket.socket:
        # A kernel without IPv6 (ipv6.disable=1) refuses the family itself.
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real(family, *args, **kwargs)

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(socket, "socket", no_ipv6)
    sockets = bind("::", 0)
    monkeypatch.undo()
    try:
        assert [(s.family, s.getsockname()[0]) for s in sockets] == [(socket.AF_INET, "0.0.0.0")]
        with socket.create_connection(("127.0.0.1", sockets[0].getsockname()[1]), timeout(5)):
            pass
    finally:
        for sock in sockets:
            sock.close()
    lines = [r.getMessage() for r in caplog.records if "IPv6" in r.getMessage()]
    assert lines == ["IPv6 is not available (Address family not supported by protocol): "
                     "listening on IPv4 only"]  # fmt: skip


async def test_default_listen_serves_ipv6_and_ipv4(start_daemon: Any) -> None:
    """The default listen address ("::") answers on [::1] and on 127.0.0.1 alike."""
    # No listen key: what a user gets who does not set one (and what etc/ ships).
    rd = await start_daemon("server: {port: 0}\n" + FAST)

    def fetch(host: str) -> int:
        url = f"http://{host}:{rd.port}/api/state"
        with urllib.request.urlopen(url, timeout=timeout(10)) as resp:
            return int(resp.status)

    assert await asyncio.to_thread(fetch, "127.0.0.1") == 200
    assert await asyncio.to_thread(fetch, "[::1]") == 200
    async with ws_connect(rd) as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
