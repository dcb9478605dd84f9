"""Hostile clients against the real daemon: every bound is hit and holds (issue 8's findings)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TOP, check_jpeg, recv_v2_frame, split_v2, timeout, ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

FAST = "cameras:\n  cam:\n    width: 320\n    height: 240\n    fps: 100\n    stop_delay: 0.3\n"
BIG = "cameras:\n  cam: {width: 1280, height: 720, fps: 30, quality: 95}\n"


def raw_websocket(
    port: int, host: str = "127.0.0.1", rcvbuf: int = 0, protocol: str = ""
) -> socket.socket:
    """A WebSocket opened by hand, so that the test decides exactly what is read and when."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout(10))
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
    sock.sendall(
        f"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{offer}\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payload under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def is_dropped(sock: socket.socket) -> bool:
    """True once the server has closed or reset the connection (reading what is pending)."""
    try:
        while True:
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


async def test_ping_flood_is_aborted_with_bounded_memory(start_daemon: Any) -> None:
    """Pings whose pongs are never read: the connection is aborted and counted, memory bounded."""
    rd = await start_daemon(FAST)

    def flood() -> bool:
        sock = raw_websocket(rd.port, rcvbuf=4096)
        ping = frame(0x9, b"p" * 125) * 512
        try:
            for _ in range(2000):  # up to 130 MB of pings: ~130 MB of pongs if unbounded
                sock.sendall(ping)
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            sock.close()
        return False

    rss_before = _rss()
    assert await asyncio.to_thread(flood), "the server took 130 MB of pings without a word"
    state = await rd.state()
    assert state["aborted"]["output_overflow"] == 1
    assert _rss() - rss_before < 100 * 2**20
    async with ws_connect(rd) as ws:  # everyone else is served as before
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_stalled_reader_is_dropped_after_send_timeout(start_daemon: Any) -> None:
    """A client that asks for frames and never reads is dropped after server.send_timeout."""
    rd = await start_daemon("server: {listen: 127.0.0.1, port: 0, send_timeout: 1}\n" + BIG)

    def stall() -> float:
        sock = raw_websocket(rd.port, rcvbuf=4096)
        for _ in range(8):
            sock.sendall(frame(0x1, b"next"))
        start = time.monotonic()
        time.sleep(timeout(1) + 2)
        sock.settimeout(0.5)
        deadline = time.monotonic() + timeout(20)
        with sock:
            while time.monotonic() < deadline:
                if is_dropped(sock):
                    return time.monotonic() - start
        return -1.0

    assert await asyncio.to_thread(stall) > 0, "the stalled reader was never dropped"
    state = await rd.state()
    assert state["aborted"]["stalled"] == 1
    assert state["clients"] == 0
    assert (await rd.camera_state("cam"))["viewers"] == 0


async def test_frames_larger_than_the_kernel_takes_at_once_arrive_whole(start_daemon: Any) -> None:
    """A slow small-window reader of protocol 2: each frame's rest, which asyncio sends later, follows its start."""
    rd = await start_daemon(BIG)

    def read_frames(count: int) -> list[tuple[dict[str, Any], bytes]]:
        sock = raw_websocket(rd.port, rcvbuf=4096, protocol="pyimagestream.v2")
        buf = b""

        def take(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                chunk = sock.recv(4096)
                assert chunk, "closed"
                buf += chunk
                time.sleep(0.001)
            data, buf = buf[:n], buf[n:]
            return data

        got = []
        with sock:
            sock.sendall(frame(0x1, b'{"type": "next"}'))
            while len(got) < count:
                first, second = take(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(take(2), "big")
                elif size == 127:
                    size = int.from_bytes(take(8), "big")
                payload = take(size)
                if first == 0x82:
                    got.append(split_v2(payload))
                    sock.sendall(frame(0x1, b'{"type": "next"}'))
                else:
                    assert first == 0x81, first  # hello, state
        return got

    frames = await asyncio.to_thread(read_frames, 5)
    for meta, jpeg in frames:
        assert len(jpeg) > 32768  # well over the window and the unsent-bytes mark (16 KiB)
        check_jpeg(jpeg, meta["width"], meta["height"])
    assert [m["seq"] for m, _ in frames] == sorted({m["seq"] for m, _ in frames})


async def test_more_than_8_unanswered_original_requests_is_a_protocol_error(
    start_daemon: Any,
) -> None:
    """An original-protocol client that queues 9 requests without reading is closed with 1008."""
    rd = await start_daemon("cameras:\n  slow: {width: 64, height: 48, fps: 1}\n")
    async with ws_connect(rd) as ws:
        for _ in range(12):
            await ws.send("next")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(timeout(10)):
                while True:
                    await ws.recv()
        assert ws.close_code == 1008
        assert "unanswered" in (ws.close_reason or "")
    assert (await rd.state())["aborted"]["protocol_error"] == 1
    async with ws_connect(rd) as ws:  # 8 are fine
        for _ in range(8):
            await ws.send("next")
        for _ in range(8):
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(20)))


async def test_deep_json_is_the_normal_protocol_error(start_daemon: Any) -> None:
    """A protocol-2 message of 1,023 '[' closes with 1008 like any other bad message."""
    rd = await start_daemon(FAST)
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws:
        await ws.recv()  # hello
        await ws.send("[" * 1023)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(timeout(10)):
                while True:
                    await ws.recv()
        assert ws.close_code == 1008


async def test_one_address_cannot_take_every_slot(start_daemon: Any) -> None:
    """100 WebSockets and 99 idle sockets from 127.0.0.2 leave room for a viewer elsewhere."""
    rd = await start_daemon("server: {listen: 127.0.0.1, port: 0, trusted_proxies: []}\n" + FAST)
    hogs = []
    for _ in range(100):
        try:
            ws = await ws_connect(rd, local_addr=("127.0.0.2", 0))
        except (OSError, InvalidHandshake, TimeoutError):
            continue
        hogs.append(ws)
    idle = []
    for _ in range(99):
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.setblocking(False)
        idle.append(sock)
        with pytest.raises(BlockingIOError):
            sock.connect(("127.0.0.1", rd.port))
    await asyncio.sleep(0.5)
    try:
        state = await rd.state()
        assert len(hogs) <= 32, len(hogs)
        assert state["refused"]["per_address"] >= 68 + 99
        async with ws_connect(rd, local_addr=("127.0.0.1", 0)) as ws:
            await ws.send("x")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
        async with ws_connect(rd, "/websocket/cam", v2=True) as ws:
            await ws.recv()
            await ws.send('{"type": "next"}')
            await recv_v2_frame(ws)
    finally:
        for sock in idle:
            sock.close()
        for ws in hogs:
            await ws.close()


async def test_fd_exhaustion_logs_one_line_and_recovers(tmp_path: Path) -> None:
    """Out of descriptors: one rate-limited accept-error line, no traceback, service recovers."""
    path = tmp_path / "c.yaml"
    path.write_text("server: {listen: 127.0.0.1, port: 0, request_timeout: 1.5}\n" + FAST)
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
        "from pyimagestreamd.cli import main; sys.exit(main(['--config', sys.argv[1]]))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(path), cwd=TOP, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(timeout(15)):
            while "open http://" not in (line := (await proc.stderr.readline()).decode()):
                assert line, "".join(log)
                log.append(line)
        port = int(line.rsplit(":", 1)[1].strip("/\n"))

        def flood() -> list[socket.socket]:
            socks = []
            for i in range(120):  # 15 addresses x 8: under the per-address limit each
                sock = socket.socket()
                sock.bind((f"127.0.0.{2 + i % 15}", 0))
                sock.connect(("127.0.0.1", port))
                socks.append(sock)
            return socks

        socks = await asyncio.to_thread(flood)
        await asyncio.sleep(1.0)
        for sock in socks:
            sock.close()

        def get() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
                sock.sendall(
                    b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                return sock.recv(100)

        async with asyncio.timeout(timeout(10)):
            while not (await asyncio.to_thread(get)).startswith(b"HTTP/1.1 200"):
                await asyncio.sleep(0.2)
    finally:
        proc.terminate()
        rest = await proc.stderr.read()
        await proc.wait()
    text = "".join(log) + rest.decode()
    lines = [ln for ln in text.splitlines() if "cannot accept connections" in ln]
    assert len(lines) == 1, text[-3000:]
    assert "Too many open files" in lines[0]
    assert "Traceback" not in text


async def test_snapshot_waits_its_own_timeout_not_the_request_timeout(start_daemon: Any) -> None:
    """A snapshot may wait snapshot_timeout even when it is longer than request_timeout.

    (websockets' fixed 10 s handshake timeout used to cut /snapshot.jpg off; a camera that
    stays silent is declared offline after 5 s, so the wait here stays below that.)
    """
    from pyimagestreamd.frame import Frame
    from pyimagestreamd.testpattern import TestPatternSource

    class SilentSource(TestPatternSource):
        """Opens fine, never delivers a frame."""

        def read(self, timeout: float) -> Frame | None:
            time.sleep(timeout)
            return None

    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, snapshot_timeout: 3, request_timeout: 0.5}\n"
        "cameras:\n  mute: {}\n",
        source_factory=SilentSource,
    )
    start = time.monotonic()
    status, _, body = await rd.get("/snapshot.jpg")
    assert (status, body) == (503, b"camera mute starting: no frame within 3 s\n")
    assert time.monotonic() - start >= 3


async def test_connection_churn_writes_no_log_lines(
    start_daemon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """200 WebSocket and HTTP connects and disconnects: no INFO line, but counted in state."""
    rd = await start_daemon(FAST)
    caplog.set_level("INFO")
    caplog.clear()
    for _ in range(100):
        async with ws_connect(rd) as ws:
            await ws.send("x")
            await ws.recv()
        assert (await rd.get("/api/state"))[0] == 200
    per_connection = [
        r for r in caplog.records if r.levelno >= 20 and not r.name.endswith(("runner", "camera"))
    ]
    assert per_connection == [], [r.getMessage() for r in per_connection[:5]]
    state = await rd.state()
    assert state["connections_last_minute"] >= 200
    assert "connections/min" in rd.daemon.status_text()
