"""Shared fixtures: a real daemon on 127.0.0.1 port 0, and real WebSocket clients.

Every wait is multiplied by PYIMAGESTREAM_TIMEOUT_SCALE (default 1), because the suite also
runs inside package builds and on slow machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import struct
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import simplejpeg
from websockets.asyncio.client import ClientConnection, connect

from pyimagestreamd.config import Config, parse_config
from pyimagestreamd.daemon import Daemon
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub
from pyimagestreamd.sources import SourceFactory, create_source

SCALE = float(os.environ.get("PYIMAGESTREAM_TIMEOUT_SCALE", "1"))
TOP = Path(__file__).resolve().parent.parent


def timeout(seconds: float) -> float:
    return seconds * SCALE


def make_config(text: str = "") -> Config:
    """A config from YAML text, listening on 127.0.0.1 port 0 unless the text says otherwise."""
    base = "server: {listen: 127.0.0.1, port: 0}\n"
    return parse_config(text if text.startswith("server:") else base + text, base_dir=TOP)


class RunningDaemon:
    def __init__(self, daemon: Daemon, task: asyncio.Task[int]) -> None:
        self.daemon = daemon
        self.task = task

    @property
    def port(self) -> int:
        return self.daemon.port

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def get(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """A plain HTTP request from a thread (urllib is blocking); returns status, headers, body."""

        def fetch() -> tuple[int, dict[str, str], bytes]:
            req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=timeout(30)) as resp:
                    return resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as err:
                with err:
                    return err.code, dict(err.headers), err.read()

        return await asyncio.to_thread(fetch)

    async def state(self) -> dict[str, Any]:
        status, _, body = await self.get("/api/state")
        assert status == 200
        result: dict[str, Any] = json.loads(body)
        return result

    async def camera_state(self, name: str) -> dict[str, Any]:
        cams = (await self.state())["cameras"]
        return next(c for c in cams if c["name"] == name)

    async def wait_camera(
        self, name: str, check: Callable[[dict[str, Any]], bool], seconds: float = 15
    ) -> dict[str, Any]:
        """Poll /api/state until camera `name` passes `check` (within `seconds`, scaled)."""
        async with deadline(seconds):
            while not check(cam := await self.camera_state(name)):
                await asyncio.sleep(0.05)
        return cam

    async def stop(self) -> int:
        self.daemon.request_stop()
        return await asyncio.wait_for(self.task, timeout(10))


@pytest.fixture
async def start_daemon() -> AsyncIterator[Callable[..., Awaitable[RunningDaemon]]]:
    """Start a daemon in this event loop from YAML text; stopped at the end of the test.

    `source_factory` replaces the registry's (sources.create_source) to run fake sources.
    """
    running: list[RunningDaemon] = []

    async def start(text: str = "", source_factory: SourceFactory = create_source) -> RunningDaemon:
        daemon = Daemon(make_config(text), source_factory=source_factory)
        task = asyncio.ensure_future(daemon.run())
        ready = asyncio.ensure_future(daemon.wait_ready())
        await asyncio.wait({task, ready}, timeout=timeout(10), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            raise RuntimeError(f"daemon exited early with {task.result()}")
        assert ready.done(), "daemon not ready within 10 s"
        running.append(RunningDaemon(daemon, task))
        return running[-1]

    yield start
    for rd in running:
        if not rd.task.done():
            await rd.stop()


def ws_connect(rd: RunningDaemon, path: str = "/websocket", v2: bool = False, **kwargs: Any) -> Any:
    """A real websockets client connection to the daemon."""
    return connect(
        rd.url(path, "ws"),
        subprotocols=["pyimagestream.v2"] if v2 else None,  # type: ignore[list-item]
        compression=None,
        open_timeout=timeout(10),
        max_size=2**24,
        **kwargs,
    )


def check_jpeg(data: bytes, width: int | None = None, height: int | None = None) -> None:
    """Assert `data` is one complete JPEG (SOI ... EOI) whose header decodes."""
    assert isinstance(data, bytes)
    assert data[:2] == b"\xff\xd8", "no SOI marker"
    assert data[-2:] == b"\xff\xd9", "no EOI marker"
    h, w, _colorspace, _subsampling = simplejpeg.decode_jpeg_header(data)
    if width is not None:
        assert (w, h) == (width, height)


def split_v2(message: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a protocol-2 frame message into its metadata and JPEG."""
    (length,) = struct.unpack(">I", message[:4])
    meta: dict[str, Any] = json.loads(message[4 : 4 + length])
    return meta, message[4 + length :]


async def pull_in_turn(clients: Sequence[ClientConnection], rounds: int) -> list[bytes]:
    """Original protocol: each client in turn asks for a frame and gets it, `rounds` times."""
    got = []
    for _ in range(rounds):
        for ws in clients:
            await ws.send("x")
            message = await asyncio.wait_for(ws.recv(), timeout(15))
            assert isinstance(message, bytes), message
            got.append(message)
    return got


async def push_a_frame(hub: Hub, publish: Callable[[Frame], object]) -> bool:
    """Once a client is handed to the hub's publish (after a frame its task sent), publish a
    new frame with `publish`; True if that frame was sent and counted inside the call."""
    while not hub._pushers:
        await asyncio.sleep(0.01)
    sent = hub.frames_sent
    assert hub.latest is not None
    publish(Frame(hub.latest.jpeg, 160, 120, time.monotonic(), time.time()))
    return bool(hub.frames_sent == sent + 1)


async def recv_v2_frame(ws: ClientConnection) -> tuple[dict[str, Any], bytes]:
    """Receive messages until a frame arrives (skipping state messages)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), timeout(10))
        if isinstance(message, bytes):
            return split_v2(message)


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    async with asyncio.timeout(timeout(seconds)):
        yield


class DaemonProcess:
    """pyimagestreamd as a separate process (as users run it), on 127.0.0.1 port 0."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: list[str]) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


async def spawn_daemon(tmp_path: Path, text: str) -> DaemonProcess:
    """Start `python -m pyimagestreamd` with this YAML; returns once it listens."""
    import re
    import sys

    path = tmp_path / "pyimagestream.yaml"
    base = "" if text.startswith("server:") else "server: {listen: 127.0.0.1, port: 0}\n"
    path.write_text(base + text)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyimagestreamd", "--config", str(path),
        cwd=TOP, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    log: list[str] = []
    async with asyncio.timeout(timeout(15)):
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise RuntimeError("daemon exited: " + "".join(log))
            log.append(line)
            if match := re.search(r"open http://127\.0\.0\.1:(\d+)/", line):
                break

    async def drain() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            log.append(raw.decode())

    dp = DaemonProcess(proc, int(match.group(1)), log)
    dp.drain_task = asyncio.ensure_future(drain())  # type: ignore[attr-defined]
    return dp


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[DaemonProcess]]]:
    procs: list[DaemonProcess] = []

    async def start(text: str) -> DaemonProcess:
        procs.append(await spawn_daemon(tmp_path, text))
        return procs[-1]

    yield start
    for dp in procs:
        if dp.proc.returncode is None:
            dp.proc.kill()
            await dp.proc.wait()


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A 20-frame MJPEG file made by ffmpeg, and the SHA-256 of each of its JPEGs."""
    folder = tmp_path_factory.mktemp("clip")
    path = folder / "clip.mjpg"
    run = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run(
        [*run, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", "20",
         "-c:v", "mjpeg", "-q:v", "5", "-f", "mjpeg", str(path)],
        check=True, timeout=timeout(60),
    )  # fmt: skip
    # The JPEGs as ffmpeg itself cuts them (not our splitter): the reference for identity.
    subprocess.run(
        [*run, "-i", str(path), "-c:v", "copy", "-f", "image2", str(folder / "f%03d.jpg")],
        check=True, timeout=timeout(60),
    )  # fmt: skip
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("f*.jpg")}
    assert len(hashes) == 20
    return path, hashes


def ffmpeg_command(clip: Path) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(clip), "-c:v", "copy", "-f", "mjpeg", "-"]  # fmt: skip
