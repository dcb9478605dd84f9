"""Throughput benchmark: pyimagestreamd against a bare websockets server, same bytes, same run.

Run with `make bench` (or `python -m bench.throughput`). Three processes: the server under
test, a client process pulling with N concurrent WebSocket clients (original protocol:
text request -> one binary JPEG), and this driver, which reads the server's CPU time from
/proc before and after each run. The reference is a minimal websockets server answering
every request with the next of the same 1920x1080 JPEGs: the library's ceiling. For
pyimagestreamd, a replay source publishes those JPEGs into the hub faster than clients can
pull them (as camera MJPEG passthrough does), so the numbers measure the daemon's path —
hub, per-client pull, send — not a camera's frame rate. That source costs CPU even with no
client (it publishes ~2000 frames/s while the camera is awake): each server's idle rate is
measured and subtracted. Bare and daemon alternate, at least 3 rounds; medians and ranges.

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

from bench.replay import HEIGHT, WIDTH, load_frames, serve_replay
from pyimagestreamd import encoder

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
    """pyimagestreamd itself, its camera replaced by a source publishing the JPEGs as fast
    as a 2000 fps camera would, untouched (passthrough)."""
    await serve_replay(load_frames(folder), camera_fps=240, interval=0.0005, paced=False)


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


IDLE_SECONDS = 3.0


def run_clients_once(port: int, n: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "clients", str(port), str(n), str(duration)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)  # type: ignore[no-any-return]


def measure(
    kind: str, folder: Path, clients: list[int], duration: float
) -> tuple[dict[int, dict[str, float]], float]:
    """One round of one server: each client count in turn; and the server's idle CPU rate.

    The idle rate (CPU-s per s with no client but the camera awake) is measured after a
    short wake-up pull: the daemon's replay source keeps publishing while its camera is
    awake, and the bare server does nothing. Each run's CPU is counted over the whole client
    run, connection set-up included; `net` subtracts the idle rate over the run's length.
    """
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.throughput", f"serve-{kind}", str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        run_clients_once(port, 1, 0.5)  # wakes the camera (stop_delay 60 keeps it awake)
        before, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle = (cpu_seconds(server.pid) - before) / (time.monotonic() - t0)
        results = {}
        for n in clients:
            before, t0 = cpu_seconds(server.pid), time.monotonic()
            res = run_clients_once(port, n, duration)
            cpu = cpu_seconds(server.pid) - before
            wall = time.monotonic() - t0
            results[n] = {
                "fps": res["frames"] / res["seconds"],
                "mbps": res["bytes"] * 8 / res["seconds"] / 1e6,
                "cpu_per_1000": cpu / res["frames"] * 1000,
                "net_per_1000": max(0.0, cpu - idle * wall) / res["frames"] * 1000,
            }
        return results, idle
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


def scale_figures(rounds: int = 60) -> list[tuple[int, int, float, int]]:
    """Per maximum width: (width, height, median CPU ms per scaled frame, bytes) for 1080p.

    CPU time (process_time) of Scaler.scaled() on a new frame each round, so every call
    decodes at the DCT scale and encodes once; a second client of the same size costs a
    cache hit, measured apart in the README's note.
    """
    from pyimagestreamd.frame import Frame
    from pyimagestreamd.scaler import Scaler
    from pyimagestreamd.testpattern import TestPattern

    pattern = TestPattern(WIDTH, HEIGHT, "bench")
    frames = [
        Frame(encoder.encode_planes(pattern.draw(i, time.time()), 80), WIDTH, HEIGHT, 0.0, 0.0, i)
        for i in range(1, rounds + 1)
    ]
    figures = []
    for max_width in (WIDTH // 2, WIDTH // 4, WIDTH // 8):
        scaler = Scaler()
        times, size = [], (0, 0, 0)
        for frame in frames:
            t0 = time.process_time()
            small = scaler.scaled(frame, max_width)
            times.append(time.process_time() - t0)
            size = (small.width, small.height, len(small.jpeg))
        figures.append((size[0], size[1], statistics.median(times) * 1000, size[2]))
    return figures


def print_scale_figures() -> None:
    print(f"Scaled frames from {WIDTH}x{HEIGHT} (DCT-domain decode + one encode, CPU per frame):")
    for width, height, ms, size in scale_figures():
        print(f"  {width}x{height}: {ms:.2f} ms CPU, {size // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.throughput")
    sub = parser.add_subparsers(dest="cmd")
    for name in ("serve-bare", "serve-daemon"):
        sub.add_parser(name).add_argument("folder", type=Path)
    cl = sub.add_parser("clients")
    cl.add_argument("port", type=int)
    cl.add_argument("n", type=int)
    cl.add_argument("duration", type=float)
    sub.add_parser("scale")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.cmd == "serve-bare":
        asyncio.run(serve_bare(args.folder))
    elif args.cmd == "serve-daemon":
        asyncio.run(serve_daemon(args.folder))
    elif args.cmd == "scale":
        print_scale_figures()
    elif args.cmd == "clients":
        print(json.dumps(asyncio.run(run_clients(args.port, args.n, args.duration))))
    else:
        run_benchmark(args.duration, [int(c) for c in args.clients.split(",")], args.rounds)


def spread(values: list[float], fmt: str) -> str:
    """Median, and the range over the rounds."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def run_benchmark(duration: float, clients: list[int], rounds: int) -> None:
    kinds = ("bare", "daemon")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    idle: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = make_frames(folder)
        print(
            f"frames: {N_FRAMES} distinct {WIDTH}x{HEIGHT} JPEGs, {min(sizes) // 1024}-{max(sizes) // 1024} KiB"
        )
        print(f"clients pull for {duration:g} s each; loopback; {os.cpu_count()} cores; "
              f"{rounds} rounds, bare and daemon alternating")  # fmt: skip
        # Interleaved, the order flipped every round: the machine is shared, and load that
        # comes and goes must fall on both servers alike.
        for r in range(rounds):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                results, idle_rate = measure(kind, folder, clients, duration)
                idle[kind].append(idle_rate)
                for n, res in results.items():
                    runs.setdefault((kind, n), []).append(res)
                    print(f"round {r}: {kind:<6} {n:3d} clients: {res['fps']:6.0f} fps, "
                          f"{res['cpu_per_1000']:.3f} CPU s/1000 ({res['net_per_1000']:.3f} net "
                          f"of idle {idle_rate:.3f} CPU-s/s)")  # fmt: skip
    print()
    print(f"Medians of {rounds} rounds (range in brackets). CPU s/1000 frames, net of each "
          "server's idle rate; idle CPU-s/s with the camera awake and no client: bare "
          f"{spread(idle['bare'], '.3f')}, daemon {spread(idle['daemon'], '.3f')}.")  # fmt: skip
    print()
    print("| clients | bare fps | bare CPU s/1000 | pyimagestreamd fps | pyimagestreamd CPU s/1000 "
          "| fps ratio | CPU ratio |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in clients:
        b, d = runs["bare", n], runs["daemon", n]
        fps_ratio = statistics.median(x["fps"] for x in d) / statistics.median(x["fps"] for x in b)
        cpu_ratio = statistics.median(x["net_per_1000"] for x in b) / statistics.median(
            x["net_per_1000"] for x in d
        )
        print(f"| {n} | {spread([x['fps'] for x in b], '.0f')} "
              f"| {spread([x['net_per_1000'] for x in b], '.3f')} "
              f"| {spread([x['fps'] for x in d], '.0f')} "
              f"| {spread([x['net_per_1000'] for x in d], '.3f')} "
              f"| {fps_ratio:.2f} | {cpu_ratio:.2f} |")  # fmt: skip
    print(
        "(fps ratio = pyimagestreamd / bare, target >= 0.8; CPU ratio = bare / pyimagestreamd per frame)"
    )
    full, alone = encode_figures()
    print()
    print(f"1080p test-pattern frame, draw + encode: {full:.2f} ms (target < 8 ms);"
          f" simplejpeg encode alone: {alone:.2f} ms; ratio {alone / full:.2f}")  # fmt: skip
    print()
    print_scale_figures()


if __name__ == "__main__":
    main()
