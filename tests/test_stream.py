"""MJPEG over HTTP with real clients (ffmpeg, curl, raw sockets), and /metrics."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from conftest import RunningDaemon, check_jpeg, push_a_frame, timeout, ws_connect
from prometheus_client.parser import text_string_to_metric_families

from pyimagestreamd.camera import CameraError, CameraState
from pyimagestreamd.frame import Frame
from pyimagestreamd.testpattern import TestPatternSource

TWO = (
    "cameras:\n  cam: {width: 320, height: 240, fps: 50, stop_delay: 0.3}\n"
    "  other: {width: 160, height: 120, fps: 25}\n"
)
PART = re.compile(rb"--pyimagestreamframe\r\n((?:[^\r\n]+\r\n)+)\r\n")


class StreamReader:
    """A raw MJPEG client: reads the response head, then parts with their headers."""

    def __init__(
        self, port: int, path: str, rcvbuf: int = 0, chunk: int = 1 << 20, pause: float = 0.0
    ) -> None:
        # chunk, pause: read at most `chunk` bytes at a time, sleeping `pause` after each.
        self.chunk, self.pause = chunk, pause
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout(10))
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)

    def _fill(self) -> None:
        chunk = self.sock.recv(self.chunk)
        if not chunk:
            raise EOFError
        self.buf += chunk
        if self.pause:
            time.sleep(self.pause)

    def part(self) -> tuple[dict[str, str], bytes]:
        while not (m := PART.match(self.buf)):
            self._fill()
        headers = dict(line.split(": ", 1) for line in m.group(1).decode().split("\r\n") if line)
        size = int(headers["Content-Length"])
        while len(self.buf) < m.end() + size + 2:
            self._fill()
        body = self.buf[m.end() : m.end() + size]
        assert self.buf[m.end() + size : m.end() + size + 2] == b"\r\n"
        self.buf = self.buf[m.end() + size + 2 :]
        return headers, body

    def close(self) -> None:
        self.sock.close()


async def test_stream_parts_carry_length_timestamp_and_sequence(start_daemon: Any) -> None:
    """Every part has Content-Type, Content-Length, X-Timestamp (ms) and a rising X-Frame-Seq."""
    rd = await start_daemon(TWO)

    def read() -> tuple[bytes, list[tuple[dict[str, str], bytes]]]:
        client = StreamReader(rd.port, "/stream.mjpg")
        try:
            return client.head, [client.part() for _ in range(20)]
        finally:
            client.close()

    head, parts = await asyncio.to_thread(read)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: multipart/x-mixed-replace;boundary=pyimagestreamframe" in head
    assert b"Transfer-Encoding" not in head
    seqs = []
    for headers, jpeg in parts:
        assert headers["Content-Type"] == "image/jpeg"
        check_jpeg(jpeg, 320, 240)
        assert re.fullmatch(r"\d{10}\.\d{3}", headers["X-Timestamp"])
        assert abs(float(headers["X-Timestamp"]) - time.time()) < timeout(5)
        seqs.append(int(headers["X-Frame-Seq"]))
    assert seqs == sorted(set(seqs))


async def test_ffmpeg_decodes_50_frames_from_the_stream(start_daemon: Any) -> None:
    """ffmpeg reads /stream.mjpg as MJPEG over HTTP and decodes 50 frames without an error."""
    rd = await start_daemon(TWO)
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-i", rd.url("/stream.mjpg"),
        "-frames:v", "50", "-f", "framemd5", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout(60))
    assert proc.returncode == 0, err.decode()
    assert err == b"", err.decode()
    frames = [ln for ln in out.decode().splitlines() if ln and not ln.startswith("#")]
    assert len(frames) == 50
    assert len({ln.split(",")[-1] for ln in frames}) > 40  # a moving picture


def pictures(folder: Path) -> list[Path]:
    return sorted(folder.glob("f*.png"))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_vlc_plays_the_stream(start_daemon: Any) -> None:
    """VLC (cvlc, headless) plays /stream.mjpg: its scene filter saves what it decoded."""
    rd = await start_daemon(TWO)
    with tempfile.TemporaryDirectory() as tmp:
        # VLC refuses to run as root (CI, package builds): as nobody then, in a folder it
        # may write (its HOME too, for its config and cache).
        os.chmod(tmp, 0o777)
        scenes = Path(tmp)
        command = [
            "cvlc", "--intf", "dummy", "--vout", "dummy", "--no-audio", "--video-filter",
            "scene", "--scene-format", "png", "--scene-ratio", "1", "--scene-prefix", "f",
            "--scene-path", tmp, rd.url("/stream.mjpg"),
        ]  # fmt: skip
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "HOME": tmp},
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout(30)
        try:
            # The last picture may be half-written: wait for one more than is checked.
            while len(await asyncio.to_thread(pictures, scenes)) <= 25 and loop.time() < deadline:
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        finally:
            if proc.returncode is None:
                proc.kill()
            assert proc.stderr is not None
            err = await asyncio.wait_for(proc.stderr.read(), timeout(10))
            await asyncio.wait_for(proc.wait(), timeout(10))
        saved = await asyncio.to_thread(pictures, scenes)
        assert len(saved) > 25, err.decode(errors="replace")[-2000:]
        decoded = await asyncio.to_thread(lambda: [p.read_bytes() for p in saved[:25]])
    # The default camera's 320x240 (the other is 160x120); the scene filter saves VLC's
    # picture buffer, whose height is rounded up to a multiple of 32 (256).
    assert {png_size(d) for d in decoded} == {(320, 256)}
    assert len(set(decoded)) > 5  # a moving picture (VLC repeats some at the start)


SNAPSHOTS = [("/snapshot.jpg", 320), ("/snapshot/other.jpg", 160), ("/snapshot", 320),
             ("/?action=snapshot", 320), ("/snapshot?camera=other", 160),
             ("/?action=snapshot&camera=other", 160)]  # fmt: skip


async def test_curl_gets_a_snapshot_through_every_alias(start_daemon: Any) -> None:
    """curl fetches a JPEG of the right camera from each snapshot spelling."""
    rd = await start_daemon(TWO)
    for path, width in SNAPSHOTS:
        result = await asyncio.to_thread(
            subprocess.run, ["curl", "-sSf", "--max-time", str(timeout(20)), rd.url(path)],
            capture_output=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (path, result.stderr)
        check_jpeg(result.stdout, width, width * 3 // 4)


STREAMS = [("/stream.mjpg", 320), ("/stream/other.mjpg", 160), ("/stream", 320),
           ("/?action=stream", 320), ("/?action=stream&camera=other", 160)]  # fmt: skip


async def test_every_stream_alias_streams_its_camera(start_daemon: Any) -> None:
    """µStreamer's and mjpg-streamer's spellings stream the camera they name."""
    rd = await start_daemon(TWO)
    for path, width in STREAMS:

        def read(path: str = path) -> bytes:
            client = StreamReader(rd.port, path)
            try:
                return client.part()[1]
            finally:
                client.close()

        check_jpeg(await asyncio.to_thread(read), width, width * 3 // 4)
    assert (await rd.get("/stream/nope.mjpg"))[0] == 404
    status, headers, body = await rd.get("/stream.mjpg", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"].startswith("multipart/x-mixed-replace")


async def test_fps_parameter_caps_the_rate(start_daemon: Any) -> None:
    """?fps=5 on a 50 fps camera delivers about 5 frames a second."""
    rd = await start_daemon(TWO)

    def count() -> float:
        client = StreamReader(rd.port, "/stream.mjpg?fps=5")
        try:
            client.part()
            start = time.monotonic()
            for _ in range(10):
                client.part()
            return 10 / (time.monotonic() - start)
        finally:
            client.close()

    rate = await asyncio.to_thread(count)
    assert 4.0 <= rate <= 5.5, rate
    assert (await rd.get("/stream.mjpg?fps=0"))[0] == 400


async def test_client_leaving_mid_part_frees_its_viewer(start_daemon: Any) -> None:
    """A client that disconnects in the middle of a part leaves no viewer and no error."""
    rd = await start_daemon(TWO)

    def leave() -> None:
        for _ in range(5):
            client = StreamReader(rd.port, "/stream.mjpg")
            while len(client.buf) < 200:
                client._fill()
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            client.close()  # RST in the middle of a part

    await asyncio.to_thread(leave)
    async with asyncio.timeout(timeout(10)):
        while (await rd.state())["clients"] or (await rd.camera_state("cam"))["viewers"]:
            await asyncio.sleep(0.05)
    status, _, jpeg = await rd.get("/snapshot.jpg")
    assert status == 200
    check_jpeg(jpeg, 320, 240)


class FlakySource(TestPatternSource):
    """The test pattern, failing while `broken` is set (a camera unplugged and back)."""

    broken = threading.Event()

    def read(self, timeout: float) -> Frame | None:
        if self.broken.is_set():
            raise CameraError("unplugged for the test")
        return super().read(timeout)


async def test_stream_shows_the_offline_card_and_resumes(start_daemon: Any) -> None:
    """The camera failing mid-stream: offline cards arrive, then live frames again."""
    FlakySource.broken.clear()
    rd = await start_daemon(
        "cameras:\n  cam: {width: 320, height: 240, fps: 30}\n", source_factory=FlakySource
    )
    client = await asyncio.to_thread(StreamReader, rd.port, "/stream.mjpg")
    try:
        await asyncio.to_thread(client.part)
        FlakySource.broken.set()
        kinds = []
        async with asyncio.timeout(timeout(20)):
            while "live-again" not in kinds:
                _headers, jpeg = await asyncio.to_thread(client.part)
                state = (await rd.camera_state("cam"))["state"]
                kinds.append(state)
                if state == "offline" and FlakySource.broken.is_set():
                    FlakySource.broken.clear()
                if state == "live" and "offline" in kinds:
                    kinds.append("live-again")
                check_jpeg(jpeg)
    finally:
        FlakySource.broken.clear()
        client.close()


async def test_50_mjpeg_and_50_websocket_clients_with_one_stalled(start_daemon: Any) -> None:
    """99 clients keep their rate while an MJPEG client that never reads is dropped."""
    fps, duration = 10, 3.0
    rd: RunningDaemon = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, send_timeout: 2}\n"
        f"cameras:\n  cam: {{width: 640, height: 480, fps: {fps}, quality: 90}}\n"
    )
    stalled = await asyncio.to_thread(StreamReader, rd.port, "/stream.mjpg", 4096)
    counts: dict[str, list[int]] = {"mjpeg": [], "ws": []}

    def mjpeg() -> None:
        client = StreamReader(rd.port, "/stream.mjpg")
        try:
            client.part()
            n, end = 0, time.monotonic() + duration
            while time.monotonic() < end:
                client.part()
                n += 1
            counts["mjpeg"].append(n)
        finally:
            client.close()

    async def ws() -> None:
        async with ws_connect(rd) as conn:
            await conn.send("x")
            await asyncio.wait_for(conn.recv(), timeout(10))
            n, end = 0, time.monotonic() + duration
            while time.monotonic() < end:
                await conn.send("x")
                await asyncio.wait_for(conn.recv(), timeout(10))
                n += 1
            counts["ws"].append(n)

    await asyncio.gather(*(asyncio.to_thread(mjpeg) for _ in range(49)), *(ws() for _ in range(50)))
    expected = fps * duration
    assert len(counts["mjpeg"]) == 49 and len(counts["ws"]) == 50
    assert min(counts["mjpeg"]) >= 0.7 * expected, counts["mjpeg"]
    assert min(counts["ws"]) >= 0.7 * expected, counts["ws"]
    async with asyncio.timeout(timeout(15)):
        while (await rd.state())["aborted"]["stalled"] < 1:
            await asyncio.sleep(0.2)
    stalled.close()


async def test_a_reader_slower_than_the_camera_keeps_getting_frames(start_daemon: Any) -> None:
    """A client that takes each frame slower than the camera makes them gets the newest, not dropped."""
    rd: RunningDaemon = await start_daemon(
        f"server: {{listen: 127.0.0.1, port: 0, send_timeout: {timeout(2)}}}\n"
        "cameras:\n  cam: {width: 640, height: 480, fps: 30, quality: 95}\n"
    )

    def read_slowly() -> list[int]:
        # A small receive buffer and 16 KiB per 20 ms (under 1 MB/s, some 10 frames/s):
        # the kernel cannot take a whole part at once, so part of it waits in asyncio.
        client = StreamReader(rd.port, "/stream.mjpg", 4096, chunk=16384, pause=0.02)
        try:
            return [int(client.part()[0]["X-Frame-Seq"]) for _ in range(15)]
        finally:
            client.close()

    seqs = await asyncio.to_thread(read_slowly)
    assert seqs == sorted(set(seqs))
    assert seqs[-1] - seqs[0] > len(seqs), seqs  # frames were skipped: the newest each time
    assert (await rd.state())["aborted"]["stalled"] == 0


async def test_metrics_parse_with_prometheus_parser(start_daemon: Any) -> None:
    """/metrics is valid exposition text with frames, bytes, refusals and the age histogram."""
    rd = await start_daemon(TWO)
    assert (await rd.get("/snapshot.jpg"))[0] == 200
    await rd.get("/x", headers={"Host": "evil.example"})
    status, headers, body = await rd.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("pyimagestream_frames_captured", "pyimagestream_frames_sent",
                 "pyimagestream_sent_bytes", "pyimagestream_camera_state",
                 "pyimagestream_camera_fps", "pyimagestream_clients",
                 "pyimagestream_refused_connections", "pyimagestream_frame_age_at_send_seconds"):  # fmt: skip
        assert name in families, sorted(families)
    sent = {
        (s.labels["camera"], s.labels["kind"]): s.value
        for s in families["pyimagestream_frames_sent"].samples
        if s.name.endswith("_total")
    }
    assert sent[("cam", "snapshot")] == 1
    refused = {
        s.labels["reason"]: s.value
        for s in families["pyimagestream_refused_connections"].samples
        if s.name.endswith("_total")
    }
    assert refused["host"] == 1


async def test_mjpeg_client_over_max_clients_gets_503(start_daemon: Any) -> None:
    """With max_clients streaming clients connected, one more MJPEG stream gets 503."""
    rd = await start_daemon("server: {listen: 127.0.0.1, port: 0, max_clients: 1}\n" + TWO)
    async with ws_connect(rd) as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
        status, headers, body = await rd.get("/stream.mjpg")
        assert (status, body) == (503, b"server full: 1 clients\n")
        assert headers["Retry-After"] == "5"
    assert (await rd.state())["refused"]["full"] == 1


async def test_a_client_that_can_take_a_frame_is_written_to_within_publish(
    start_daemon: Any,
) -> None:
    """While its connection can take frames, an MJPEG client's frame is written and counted
    inside the hub's publish (the turn of the event loop that captured it), not by its
    task in a later turn; it still receives every part."""
    rd: RunningDaemon = await start_daemon(
        "cameras:\n  cam: {width: 160, height: 120, fps: 5, stop_delay: 0}\n"
    )
    hub = rd.daemon.runners["cam"].hub
    client = await asyncio.to_thread(StreamReader, rd.port, "/stream.mjpg")

    async def publish_until_pushed_thrice() -> None:
        pushed = 0
        while pushed < 3:
            pushed += await push_a_frame(hub, hub.publish)

    try:
        async with asyncio.timeout(timeout(10)):
            parts, _ = await asyncio.gather(
                asyncio.to_thread(lambda: [client.part() for _ in range(4)]),
                publish_until_pushed_thrice(),
            )
    finally:
        client.close()
    assert [headers["Content-Type"] for headers, _ in parts] == ["image/jpeg"] * 4


async def test_a_failing_push_closes_that_client_only(start_daemon: Any, monkeypatch: Any) -> None:
    """An error while a frame is pushed to one MJPEG client ends that client's stream; the
    camera stays live and another client goes on streaming."""
    from pyimagestreamd import mjpegpush

    rd: RunningDaemon = await start_daemon(
        "cameras:\n  cam: {width: 160, height: 120, fps: 20, stop_delay: 0}\n"
    )
    hub = rd.daemon.runners["cam"].hub
    doomed = await asyncio.to_thread(StreamReader, rd.port, "/stream.mjpg")
    await asyncio.to_thread(doomed.part)
    async with asyncio.timeout(timeout(10)):
        while not hub._pushers:
            await asyncio.sleep(0.01)
    real = mjpegpush.send_if_ready
    failed: list[int] = []

    def failing(*args: Any) -> bool:
        if not failed:
            failed.append(1)
            raise RuntimeError("planted")
        return real(*args)

    monkeypatch.setattr(mjpegpush, "send_if_ready", failing)

    def read_to_the_end() -> int:
        n = 0
        try:
            while n < 50:  # a stream that goes on: the test fails, without waiting long
                doomed.part()
                n += 1
        except (EOFError, ConnectionError):
            pass
        return n

    assert await asyncio.to_thread(read_to_the_end) < 3
    doomed.close()
    other = await asyncio.to_thread(StreamReader, rd.port, "/stream.mjpg")
    try:
        await asyncio.to_thread(lambda: [other.part() for _ in range(5)])
    finally:
        other.close()
    assert hub.state is CameraState.LIVE
