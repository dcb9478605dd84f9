"""The server under test of the loopback benchmarks: a daemon whose camera replays JPEGs.

Run in a process of its own by bench.throughput (`make bench`) and bench.stream
(`make bench-stream`), as `python bench/replay.py FOLDER ...`: it serves FOLDER's JPEGs
(0.jpg, 1.jpg, ...) in turn as the frames of one 1920x1080 camera named `bench`, untouched
(as camera MJPEG passthrough does), prints the port once it listens and runs until it is
killed. It uses the pyimagestreamd package that is on the path: bench.stream runs this
file with another tree's package, so it imports nothing from bench.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

WIDTH, HEIGHT = 1920, 1080


def load_frames(folder: Path) -> list[bytes]:
    """FOLDER's N.jpg files in the order of N."""
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))]


async def serve_replay(
    frames: Sequence[bytes], camera_fps: int, interval: float, paced: bool
) -> None:
    """The daemon with a replay camera: a frame every `interval` s, on a clock (`paced`:
    frame k is due `k * interval` after the start, late ones catch up) or after a sleep of
    `interval` (a free-running camera: as fast as the daemon takes them, at most that).
    `camera_fps` is the camera's configured rate."""
    import pyimagestreamd.daemon
    from pyimagestreamd.camera import CaptureSource
    from pyimagestreamd.config import parse_config
    from pyimagestreamd.frame import Frame

    class ReplaySource(CaptureSource):
        def open(self) -> None:
            self.i = 0
            self.due = time.monotonic()

        def read(self, timeout: float) -> Frame | None:
            if paced:
                self.due += interval
                time.sleep(max(0.0, self.due - time.monotonic()))
            else:
                time.sleep(interval)
            self.i += 1
            return Frame(frames[self.i % len(frames)], WIDTH, HEIGHT, time.monotonic(), time.time())

        def close(self) -> None:
            pass

    logging.basicConfig(level=logging.WARNING)
    config = parse_config(
        "server: {listen: 127.0.0.1, port: 0, max_clients: 200}\n"
        f"cameras:\n  bench: {{width: {WIDTH}, height: {HEIGHT}, fps: {camera_fps},"
        " stop_delay: 60}\n"
    )
    daemon = pyimagestreamd.daemon.Daemon(config, source_factory=ReplaySource)
    task = asyncio.ensure_future(daemon.run())
    await daemon.wait_ready()
    loop = type(asyncio.get_running_loop())
    print(f"bench/replay.py: on {loop.__module__}.{loop.__name__}", file=sys.stderr)
    print(daemon.port, flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/replay.py")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--camera-fps", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--paced", action="store_true")
    args = parser.parse_args()
    frames = load_frames(args.folder)
    try:  # the loop the tree's daemon runs on (cli.py), so that trees compare as installed
        from pyimagestreamd.eventloop import run
    except ImportError:  # a tree from before eventloop.py: asyncio's loop
        run = asyncio.run
    run(serve_replay(frames, args.camera_fps, args.interval, args.paced))


if __name__ == "__main__":
    main()
