"""Throughput benchmark: pyimagestreamd against a bare websockets server, same bytes, same run.

Run with `make bench` (or `python -m bench.throughput`). Three processes: the server under
test, a client process pulling with N concurrent WebSocket clients (original protocol:
text request -> one binary JPEG), and this driver, which reads the server's CPU time from
/proc before and after each run. The reference is a minimal websockets server answering
every request with the next of the same 1920x1080 JPEGs: the library's ceiling. For
pyimagestreamd, a replay source publishes those JPEGs into the hub faster than clients can
pull them (as camera MJPEG passthrough does), so the numbers measure the daemon's path —
hub, per-client pull, send — not a camera's frame rate.

Also: time to draw and encode one 1080p test-pattern frame, next to simplejpeg alone
encoding the same planes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyimagestreamd import encoder

WIDTH, HEIGHT = 1920, 1080
N_FRAMES = 8


def make_frames(folder: Path) -> list[int]:
    """Write N_FRAMES distinct 1080p JPEGs of camera-like size (~300 KB); return sizes."""
    from pyimagestreamd.testpattern import TestPattern

    pattern = TestPattern(WIDTH, HEIGHT, "bench")
    sizes = []
    for i in range(N_FRAMES):
        y, u, v = (p.copy() for p in pattern.draw(i, time.time()))
        # Sensor-like noise: a flat test pattern compresses far better than a real scene.
        noise = np.random.default_rng(i).integers(-6, 7, y.shape, dtype=np.int16)
        y = np.clip(y.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        jpeg = encoder.encode_planes((y, u, v), 85)
        (folder / f"{i}.jpg").write_bytes(jpeg)
        sizes.append(len(jpeg))
    return sizes


def load_frames(folder: Path) -> list[bytes]:
    return [(folder / f"{i}.jpg").read_bytes() for i in range(N_FRAMES)]


# -- servers (run in their own process) -------------------------------------------------------


async def serve_bare(folder: Path) -> None:
    """The reference: websockets with the same settings, answering each request at once."""
    from websockets.asyncio.server import ServerConnection, serve

    frames = load_frames(folder)

    async def handler(ws: ServerConnection) -> None:
        i = 0
        async for _ in ws:
            await ws.send(frames[i % len(frames)])
            i += 1

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=1024) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()


async def serve_daemon(folder: Path) -> None:
    """pyimagestreamd itself, its camera replaced by a source replaying the JPEGs."""
    import logging

    import pyimagestreamd.daemon
    from pyimagestreamd.camera import CaptureSource
    from pyimagestreamd.config import parse_config
    from pyimagestreamd.frame import Frame

    frames = load_frames(folder)

    class ReplaySource(CaptureSource):
        """Publishes the JPEGs as fast as a 2000 fps camera would, untouched (passthrough)."""

        def open(self) -> None:
            self.i = 0

        def read(self, timeout: float) -> Frame | None:
            time.sleep(0.0005)
            self.i += 1
            return Frame(frames[self.i % len(frames)], WIDTH, HEIGHT, time.monotonic(), time.time())

        def close(self) -> None:
            pass

    logging.basicConfig(level=logging.WARNING)
    config = parse_config(
        "server: {listen: 127.0.0.1, port: 0, max_clients: 200}\n"
        "cameras:\n  bench: {width: 1920, height: 1080, fps: 240, stop_delay: 60}\n"
    )
    daemon = pyimagestreamd.daemon.Daemon(config, source_factory=ReplaySource)
    task = asyncio.ensure_future(daemon.run())
    await daemon.wait_ready()
    print(daemon.port, flush=True)
    await task


# -- clients (run in their own process) ------------------------------------------------------


async def run_clients(port: int, n: int, duration: float) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}/websocket"
    conns = [await connect(url, compression=None, max_size=2**24) for _ in range(n)]
    for ws in conns:  # warm up: the camera is running, every client has had a frame
        await ws.send("x")
        await ws.recv()
    frames = 0
    nbytes = 0
    stop_at = time.monotonic() + duration

    async def pull(ws: Any) -> None:
        nonlocal frames, nbytes
        while time.monotonic() < stop_at:
            await ws.send("x")
            data = await ws.recv()
            frames += 1
            nbytes += len(data)

    started = time.monotonic()
    await asyncio.gather(*(pull(ws) for ws in conns))
    elapsed = time.monotonic() - started
    for ws in conns:
        await ws.close()
    return {"frames": frames, "bytes": nbytes, "seconds": elapsed}


# -- driver ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    kind: str, folder: Path, clients: list[int], duration: float
) -> dict[int, dict[str, float]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.throughput", f"serve-{kind}", str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results = {}
        for n in clients:
            before = cpu_seconds(server.pid)
            out = subprocess.run(
                [sys.executable, "-m", "bench.throughput", "clients", str(port), str(n), str(duration)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            cpu = cpu_seconds(server.pid) - before
            res = json.loads(out)
            # CPU is counted over the whole client run (including connection set-up), so it
            # slightly overstates per-frame cost for both servers alike.
            results[n] = {
                "fps": res["frames"] / res["seconds"],
                "mbps": res["bytes"] * 8 / res["seconds"] / 1e6,
                "cpu_per_1000": cpu / res["frames"] * 1000,
            }
        return results
    finally:
        server.terminate()
        server.wait(10)


def encode_figures(rounds: int = 100) -> tuple[float, float]:
    """Median ms to draw+encode a 1080p test-pattern frame, and to encode the planes alone."""
    from pyimagestreamd.testpattern import TestPattern

    pattern = TestPattern(WIDTH, HEIGHT, "bench")
    full, alone = [], []
    for i in range(rounds):
        t0 = time.perf_counter()
        planes = pattern.draw(i, time.time())
        encoder.encode_planes(planes, 80)
        t1 = time.perf_counter()
        encoder.encode_planes(planes, 80)
        t2 = time.perf_counter()
        full.append(t1 - t0)
        alone.append(t2 - t1)
    return statistics.median(full) * 1000, statistics.median(alone) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.throughput")
    sub = parser.add_subparsers(dest="cmd")
    for name in ("serve-bare", "serve-daemon"):
        sub.add_parser(name).add_argument("folder", type=Path)
    cl = sub.add_parser("clients")
    cl.add_argument("port", type=int)
    cl.add_argument("n", type=int)
    cl.add_argument("duration", type=float)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", default="1,10,50")
    args = parser.parse_args()
    if args.cmd == "serve-bare":
        asyncio.run(serve_bare(args.folder))
    elif args.cmd == "serve-daemon":
        asyncio.run(serve_daemon(args.folder))
    elif args.cmd == "clients":
        print(json.dumps(asyncio.run(run_clients(args.port, args.n, args.duration))))
    else:
        run_benchmark(args.duration, [int(c) for c in args.clients.split(",")])


def run_benchmark(duration: float, clients: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = make_frames(folder)
        print(
            f"frames: {N_FRAMES} distinct {WIDTH}x{HEIGHT} JPEGs, {min(sizes) // 1024}-{max(sizes) // 1024} KiB"
        )
        print(f"clients pull for {duration:g} s each; loopback; {os.cpu_count()} cores")
        bare = measure("bare", folder, clients, duration)
        daemon = measure("daemon", folder, clients, duration)
    print()
    print(
        "clients | bare websockets fps  CPU s/1000 | pyimagestreamd fps  CPU s/1000 | fps ratio  CPU ratio"
    )
    for n in clients:
        b, d = bare[n], daemon[n]
        print(
            f"{n:7d} | {b['fps']:20.0f} {b['cpu_per_1000']:11.3f} | {d['fps']:18.0f} {d['cpu_per_1000']:11.3f}"
            f" | {d['fps'] / b['fps']:9.2f} {b['cpu_per_1000'] / d['cpu_per_1000']:10.2f}"
        )
    print(
        "(fps ratio = pyimagestreamd / bare, target >= 0.8; CPU ratio = bare / pyimagestreamd per frame)"
    )
    full, alone = encode_figures()
    print()
    print(f"1080p test-pattern frame, draw + encode: {full:.2f} ms (target < 8 ms);"
          f" simplejpeg encode alone: {alone:.2f} ms; ratio {alone / full:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
