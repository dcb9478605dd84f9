"""Helpers for the in-guest tests: kernel drivers, feeders, the daemon, WebSocket clients.

Everything here is real: the daemon runs as its own process from the source tree (the
read-only 9p share), cameras are vivid and v4l2loopback in the guest's kernel, and clients
speak the wire protocol over the guest's loopback with the websockets library. Waits are
multiplied by PYIMAGESTREAM_TIMEOUT_SCALE like the rest of the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from pyimagestreamd.v4l2 import BUFFER_COUNT

SRC = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CLIP = Path(os.environ.get("PYIMAGESTREAM_VM_CLIP", "/opt/pyimagestream/clip-1080p30.mkv"))
SCALE = float(os.environ.get("PYIMAGESTREAM_TIMEOUT_SCALE", "1"))
SUBPROTOCOL = "pyimagestream.v2"

# v4l2loopback nodes: one per kind of feeder, so a test never sees another's leftovers.
LOOP_MJPEG, LOOP_YUYV, LOOP_HOSTILE = "/dev/video10", "/dev/video11", "/dev/video12"
VIVID = "/dev/video0"
VIVID_PLATFORM = "vivid.0"


def timeout(seconds: float) -> float:
    return seconds * SCALE


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def wait_until(
    predicate: Callable[[], Any], seconds: float, what: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout(seconds)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout(seconds):.0f} s waiting for {what}")
        time.sleep(interval)


# -- drivers --------------------------------------------------------------------------------


def load_v4l2loopback() -> None:
    """(Re)load v4l2loopback with the three test nodes; capture and output on each node."""
    run("modprobe", "-r", "v4l2loopback", check=False)
    # exclusive_caps=0: 0.12.7 with exclusive_caps=1 loses both caps once a producer
    # closes, and the next producer fails until the module is reloaded.
    run("modprobe", "v4l2loopback", "devices=3", "video_nr=10,11,12",
        "card_label=pis-mjpeg,pis-yuyv,pis-hostile", "exclusive_caps=0,0,0",
        # 2 buffers by default: one late wake-up of the reader on a busy guest loses a frame.
        # Exactly the daemon's count (v4l2.BUFFER_COUNT): a reader asking 0.12.7 for fewer
        # buffers than the node has unlinks them without the writer's lock, and a write
        # racing with that corrupts a list and panics the kernel (seen once here).
        f"max_buffers={BUFFER_COUNT}")  # fmt: skip
    for node in (LOOP_MJPEG, LOOP_YUYV, LOOP_HOSTILE):
        wait_until(lambda n=node: os.path.exists(n), 10, f"{node} to appear")


def load_vivid(video_nr: int = 0) -> str:
    """(Re)load vivid with its capture node at /dev/video`video_nr`; return the node."""
    run("modprobe", "-r", "vivid", check=False)
    node = f"/dev/video{video_nr}"
    run("modprobe", "vivid", "n_devs=1", "node_types=0x1", "num_inputs=4",
        "input_types=0xe4", f"vid_cap_nr={video_nr}")  # fmt: skip
    wait_until(lambda: os.path.exists(node), 10, f"{node} to appear")
    return node


def vivid_by_path() -> str:
    """The link udev's own rules (60-persistent-v4l.rules) make for vivid's capture node.

    vivid is a platform device, so path_id names it `platform-vivid.0`; v4l2loopback's nodes
    are virtual devices and get neither a by-path nor a by-id link."""
    return f"/dev/v4l/by-path/platform-{VIVID_PLATFORM}-video-index0"


def vivid_hdmi_1080p30() -> None:
    """Select vivid's HDMI input and CEA-861 1080p30 timings (its webcam input tops at 5 fps)."""
    run("v4l2-ctl", "-d", VIVID, "--set-input=3")
    run("v4l2-ctl", "-d", VIVID, "--set-dv-bt-timings",
        "width=1920,height=1080,interlaced=0,polarities=3,pixelclock=74250000,"
        "hfp=88,hs=44,hbp=148,vfp=4,vs=5,vbp=36")  # fmt: skip


def vivid_unplug() -> None:
    Path("/sys/bus/platform/drivers/vivid/unbind").write_text(VIVID_PLATFORM)


def vivid_replug() -> None:
    Path("/sys/bus/platform/drivers/vivid/bind").write_text(VIVID_PLATFORM)
    wait_until(lambda: os.path.exists(VIVID), 10, f"{VIVID} to come back")


# -- producers ------------------------------------------------------------------------------


@contextlib.contextmanager
def process(*args: str, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A background process for the duration of a with block; killed and reaped at the end."""
    log = open(f"/tmp/{name}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        log.close()


def clip_feeder(
    device: str = LOOP_MJPEG, speed: float = 1.0
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """ffmpeg copying the prepared MJPEG clip into a loopback node at `speed` x its 30 fps."""
    pace = ["-re"] if speed == 1.0 else ["-readrate", f"{speed:.4f}"]
    return process("ffmpeg", "-hide_banner", "-loglevel", "error", *pace, "-stream_loop", "-1",
                   "-i", str(CLIP), "-c:v", "copy", "-f", "v4l2", device, name="ffmpeg-feeder")  # fmt: skip


def python_feeder(
    device: str, mode: str, fps: float = 30
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return process(
        sys.executable, str(HERE / "feeder.py"), device, mode, str(fps), name=f"feeder-{mode}"
    )


@contextlib.contextmanager
def ustreamer(
    device: str, host: str = "127.0.0.1", port: int = 8081
) -> Iterator[subprocess.Popen[bytes]]:
    """µStreamer (Debian's ustreamer) passing the device's JPEGs through, as they are."""
    with process(
        "ustreamer", f"--device={device}", "--format=MJPEG", "--encoder=HW",
        # --desired-fps left at its default (0: as fast as the source): with 30 it paces
        # its grabs and captured only 16-19 fps from v4l2loopback here.
        "--resolution=1920x1080", f"--host={host}", f"--port={port}",
        f"--buffers={BUFFER_COUNT}", name="ustreamer",
    ) as proc:  # fmt: skip
        time.sleep(3)
        if proc.poll() is not None:
            raise AssertionError("ustreamer exited:\n" + Path("/tmp/ustreamer.log").read_text())
        yield proc


def busy_holder(device: str) -> subprocess.Popen[bytes]:
    """Another program streaming from `device` (v4l2-ctl), holding its buffers."""
    return subprocess.Popen(
        ["v4l2-ctl", "-d", device, "--set-fmt-video=width=640,height=480,pixelformat=YUYV",
         "--stream-mmap", "--stream-count=1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def clip_frame_md5s() -> list[str]:
    """md5 of every JPEG in the clip, exactly as ffmpeg hands them to the v4l2 device."""
    out = run("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(CLIP), "-c:v", "copy",
              "-f", "framemd5", "-").stdout  # fmt: skip
    return [
        line.rsplit(",", 1)[1].strip()
        for line in out.splitlines()
        if line and not line.startswith("#")
    ]


# -- the daemon -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """pyimagestreamd from the source tree, as its own process, on a free loopback port."""

    def __init__(
        self,
        cameras: str,
        tmp: Path,
        log_level: str = "info",
        listen: str = "127.0.0.1",
        *,
        extra: str = "",
        headers: dict[str, str] | None = None,
        src: Path = SRC,
    ) -> None:
        """`extra`: more top-level YAML (an `auth:` section, say); `headers` go with every
        request of get() (credentials, then); `src`: the source tree to run (make bench-vm's
        BENCH_AGAINST)."""
        self.port = free_port()
        self.headers = headers or {}
        self.config = tmp / "pyimagestream.yaml"
        self.config.write_text(
            f"server: {{listen: {listen}, port: {self.port}}}\nlog_level: {log_level}\n"
            f"{extra}cameras:\n{cameras}"
        )
        self.log_path = tmp / "daemon.log"
        self._log = self.log_path.open("wb")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyimagestreamd", "--config", str(self.config)],
            cwd=src, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        wait_until(self._answers, 60, "the daemon to answer /api/state", interval=0.3)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            self.state()
        except OSError:
            return False
        return True

    def get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout(30)) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def state(self) -> dict[str, Any]:
        return json.loads(self.get("/api/state")[1])  # type: ignore[no-any-return]

    def camera(self, name: str) -> dict[str, Any]:
        return next(c for c in self.state()["cameras"] if c["name"] == name)

    def wait_camera(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], seconds: float, what: str
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cam = self.camera(name)
            return cam if predicate(cam) else None

        return wait_until(check, seconds, what, 0.2)  # type: ignore[no-any-return]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, camera: str) -> str:
        return f"ws://127.0.0.1:{self.port}/websocket/{camera}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# -- WebSocket clients ----------------------------------------------------------------------


@dataclass
class Received:
    meta: dict[str, Any]
    jpeg: bytes
    at: float


@dataclass
class V2Client:
    """A protocol-2 client that keeps `window` credits outstanding and records everything."""

    url: str
    window: int = 4
    keep_jpeg: bool = True
    frames: list[Received] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    hello: dict[str, Any] = field(default_factory=dict)
    ws: ClientConnection | None = None

    async def __aenter__(self) -> V2Client:
        self.ws = await connect(self.url, subprotocols=[SUBPROTOCOL], max_size=2**25)  # type: ignore[list-item]
        self.hello = json.loads(await self.ws.recv())
        for _ in range(self.window):
            await self.ws.send('{"type": "next"}')
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    async def pump(self, seconds: float, until: Callable[[V2Client], bool] | None = None) -> None:
        """Receive for `seconds`, re-crediting each frame; stop early once `until` holds."""
        assert self.ws is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                return
            if isinstance(message, str):
                self.states.append(json.loads(message))
            else:
                now = time.monotonic()
                (size,) = struct.unpack(">I", message[:4])
                meta = json.loads(message[4 : 4 + size])
                jpeg = message[4 + size :] if self.keep_jpeg else b""
                self.frames.append(Received(meta, jpeg, now))
                await self.ws.send('{"type": "next"}')
            if until is not None and until(self):
                return


class OriginalClient:
    """The original protocol: each text message is answered by one JPEG."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def next_jpeg(self) -> bytes:
        await self.ws.send("next")
        message = await asyncio.wait_for(self.ws.recv(), timeout(30))
        assert isinstance(message, bytes)
        return message


@contextlib.asynccontextmanager
async def connect_original(url: str) -> AsyncIterator[OriginalClient]:
    async with connect(url, max_size=2**25) as ws:
        yield OriginalClient(ws)


async def original_client_frames(url: str, count: int) -> list[bytes]:
    """The original protocol: one text message, one JPEG back."""
    out = []
    async with connect(url, max_size=2**25) as ws:
        for _ in range(count):
            await ws.send("next")
            message = await ws.recv()
            assert isinstance(message, bytes)
            out.append(message)
    return out


def camera_yaml(name: str, **settings: Any) -> str:
    lines = [f"  {name}:"]
    for key, value in settings.items():
        lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"
