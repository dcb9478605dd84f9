"""The clients of `make bench-link`: one viewer on the far end of the shaped link.

Run by tests/vm/bench_link.py inside the client network namespace
(`ip netns exec ... python linkclients.py KIND URL SECONDS WARMUP`), one process per case,
so that nothing but the veth pair lies between it and the streamer. It prints one JSON line:
what arrived after the warm-up, and each frame's age on arrival where the stream says when
the frame was captured.

Kinds:
- `mjpeg`: a plain multipart reader (GET, then parts with their headers). Capture time from
  `X-UStreamer-Grab-Time` (µStreamer with `?extra_headers=1`: CLOCK_MONOTONIC_RAW seconds,
  which here run ~0.6 s apart from CLOCK_MONOTONIC) or else `X-Timestamp` (ours: capture,
  Unix seconds); the age is taken against the same clock.
- `original`: the original WebSocket protocol, one request in flight. Its frames carry no
  time, so the client reports (arrival, md5) and the bench matches them with the capture
  times an unshaped observer saw for the same JPEG.
- `window:N`: protocol 2 keeping N credits outstanding.
- `flow`: protocol 2 with the window chosen by web/flow.js itself, run under Node
  (flowdriver.mjs), fed the same calls web/stream.js makes: hello, creditSent, frameArrived (with the
  message's size). Node is started, and has loaded flow.js, before the case's clock starts:
  a page has its scripts before it opens the WebSocket, and under TCG Node's start-up takes
  seconds, which would otherwise come out of this client's warm-up and measured minute only.

All clocks are the guest's: namespaces share them.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
FLOW_JS = HERE.parents[2] / "web" / "flow.js"
SUBPROTOCOL = "pyimagestream.v2"


class Tally:
    """Frames, bytes and ages counted only after the warm-up."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.started_at = time.monotonic()
        self.measure_from = self.started_at + warmup
        self.deadline = self.measure_from + seconds
        self.frames = 0
        self.bytes = 0
        self.ages: list[float] = []
        # When each of `ages` arrived, s since the start (as the trace's t).
        self.age_at: list[float] = []
        self.first_at = float("nan")  # the first frame's arrival, s since the start
        self.arrivals: list[tuple[float, str]] = []  # (wall time, md5): `original` only

    @property
    def measuring(self) -> bool:
        return time.monotonic() >= self.measure_from

    @property
    def done(self) -> bool:
        return time.monotonic() >= self.deadline

    def add(self, size: int, age: float | None) -> None:
        if self.first_at != self.first_at:  # NaN: this is the first
            self.first_at = time.monotonic() - self.started_at
        if self.measuring:
            self.frames += 1
            self.bytes += size
            if age is not None:
                self.ages.append(age)
                self.age_at.append(time.monotonic() - self.started_at)

    def result(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.measure_from
        return {"frames": self.frames, "bytes": self.bytes, "seconds": seconds,
                "ages": self.ages, "age_at": self.age_at, "first": self.first_at,
                "arrivals": self.arrivals}  # fmt: skip


def mjpeg(url: str, tally: Tally) -> None:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    stream = sock.makefile("rb", buffering=1 << 16)
    status = stream.readline()
    if b" 200" not in status:
        sys.exit(f"linkclients: {url}: {status.decode(errors='replace').strip()}")
    while stream.readline() not in (b"\r\n", b""):
        pass  # the response's own headers
    raw_ms: bool | None = None  # µStreamer's grab time: milliseconds or seconds
    while not tally.done:
        headers: dict[str, str] = {}
        size = 0
        while True:
            line = stream.readline()
            if not line:
                return
            size += len(line)
            if line == b"\r\n" and headers:
                break
            if b":" in line:
                key, value = line.decode("latin-1").split(":", 1)
                headers[key.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        body = stream.read(length)
        now_wall, now_raw = time.time(), time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
        age = None
        # µStreamer sends an X-Timestamp too, but of the send, not of the grab: its grab
        # time comes first.
        if "x-ustreamer-grab-time" in headers:
            grab = float(headers["x-ustreamer-grab-time"])
            if raw_ms is None:  # the unit that puts the grab time nearest to now
                raw_ms = abs(grab / 1000 - now_raw) < abs(grab - now_raw)
            age = now_raw - (grab / 1000 if raw_ms else grab)
        elif "x-timestamp" in headers:
            age = now_wall - float(headers["x-timestamp"])
        tally.add(size + len(body), age)


def original(url: str, tally: Tally) -> None:
    with connect(url, max_size=2**25, open_timeout=30) as ws:
        while not tally.done:
            ws.send("next")
            message = ws.recv(30)
            assert isinstance(message, bytes)
            if tally.measuring:
                tally.arrivals.append((time.time(), hashlib.md5(message).hexdigest()))
            tally.add(len(message), None)


class FlowDriver:
    """web/flow.js's FlowControl under Node, called as web/stream.js calls it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(HERE / "flowdriver.mjs"), str(FLOW_JS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self.call("ping")  # answered once Node has started and loaded flow.js

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("linkclients: flowdriver.mjs exited")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def protocol2(
    url: str, tally: Tally, window: int | None, flow: FlowDriver | None
) -> dict[str, Any]:
    """Protocol 2 with a fixed window, or with flow.js's (window None, `flow` started)."""
    opening = time.time()
    windows: list[int] = []
    # flow.js's decisions over time: every change of window, and once a second, with the
    # measurements it decided on (queue delay, transfer time, ...).
    trace: list[dict[str, Any]] = []
    traced_at = 0.0
    try:
        with connect(url, subprotocols=[SUBPROTOCOL], max_size=2**25, open_timeout=30) as ws:  # type: ignore[list-item]
            handshake_ms = (time.time() - opening) * 1000
            hello = json.loads(ws.recv(30))
            want, outstanding = window or 1, 0
            if flow is not None:
                want = flow.call("hello", window=hello.get("window") or 1,
                                 live=hello.get("state") == "live",
                                 handshakeMs=handshake_ms)["window"]  # fmt: skip
            while not tally.done:
                if outstanding < want:
                    for _ in range(want - outstanding):
                        ws.send('{"type": "next"}')
                    if flow is not None:
                        flow.call("credits", now=time.time() * 1000, n=want - outstanding)
                    outstanding = want
                message = ws.recv(30)
                if isinstance(message, str):
                    continue  # state changes: the camera stays live here
                now = time.time()
                outstanding -= 1
                (size,) = struct.unpack(">I", message[:4])
                meta = json.loads(message[4 : 4 + size])
                tally.add(len(message), now - meta["time"])
                if flow is not None:
                    got = flow.call("frame", meta=meta, now=now * 1000, bytes=len(message))
                    changed = got["window"] != want
                    want, outstanding = got["window"], got["outstanding"]
                    if tally.measuring:
                        windows.append(want)
                    if changed or now - traced_at >= 1:
                        traced_at = now
                        trace.append({"t": round(time.monotonic() - tally.started_at, 2), "window": want,
                                      "age": round(now - meta["time"], 3), "size": len(message),
                                      **{k: round(v, 1) if isinstance(v, float) else v
                                         for k, v in got["state"].items()}})  # fmt: skip
    finally:
        if flow is not None:
            flow.close()
    return {"windows": windows, "trace": trace}


def main() -> None:
    kind, url, seconds, warmup = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    flow = FlowDriver() if kind == "flow" else None  # ready before the clock starts
    tally = Tally(warmup, seconds)
    extra: dict[str, Any] = {}
    if kind == "mjpeg":
        mjpeg(url, tally)
    elif kind == "original":
        original(url, tally)
    elif kind == "flow":
        extra = protocol2(url, tally, None, flow)
    elif kind.startswith("window:"):
        extra = protocol2(url, tally, int(kind.split(":", 1)[1]), None)
    else:
        sys.exit(f"linkclients: unknown kind {kind!r}")
    print(json.dumps({**tally.result(), **extra}))


if __name__ == "__main__":
    main()
