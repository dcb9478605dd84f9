"""The server under test of the loopback benchmarks: a daemon whose camera replays JPEGs.

Run in a process of its own by bench.throughput (`make bench`) and bench.stream
(`make bench-stream`), as `python bench/replay.py FOLDER ...`: it serves FOLDER's JPEGs
(0.jpg, 1.jpg, ...) in turn as the frames of one 1920x1080 camera named `bench`, untouched
(as camera MJPEG passthrough does), prints the port once it listens and runs until it is
killed. It uses the pyimagestreamd package that is on the path: bench.stream runs this
file with another tree's package, so it imports nothing from bench.

With `--ticker` the camera behaves like a device instead: a ticker *process* writes one
byte per frame (paced at `interval`) into a pipe, and the source waits for it with poll()
and reads it, as V4L2 capture waits on the device's fd and dequeues a buffer. A tree whose
capture can be read by the event loop (`loop_fd`, camera.py) then reads it there; an older
tree reads it in the capture thread and hands the frame over. The ticker's CPU is not the
daemon's (another process), as a driver's is not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

WIDTH, HEIGHT = 1920, 1080


def load_frames(folder: Path) -> list[bytes]:
    """FOLDER's N.jpg files in the order of N."""
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))]


TICKER = """
import os, sys, time
fd, interval = int(sys.argv[1]), float(sys.argv[2])
due = time.monotonic()
while True:
    due += interval
    time.sleep(max(0.0, due - time.monotonic()))
    try:
        os.write(fd, b"x")
    except BlockingIOError:
        pass  # nobody read for a while: a device drops frames too
    except OSError:
        break
"""


async def serve_replay(
    frames: Sequence[bytes], camera_fps: int, interval: float, paced: bool, ticker: bool = False
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

    class TickerSource(CaptureSource):
        """Frames announced by the ticker process through a pipe, like a device's fd."""

        def open(self) -> None:
            self.i = 0
            self.r, w = os.pipe()
            os.set_blocking(self.r, False)
            os.set_blocking(w, False)
            self.ticker = subprocess.Popen(
                [sys.executable, "-c", TICKER, str(w), str(interval)], pass_fds=(w,)
            )
            os.close(w)
            self.poll = select.poll()
            self.poll.register(self.r, select.POLLIN)

        def loop_fd(self) -> int | None:
            return self.r

        def read(self, timeout: float) -> Frame | None:
            if not self.poll.poll(int(timeout * 1000)):
                return None
            return self.read_ready()

        def read_ready(self) -> Frame | None:
            os.read(self.r, 1)  # BlockingIOError if there is no frame: as DQBUF's EAGAIN
            self.i += 1
            return Frame(frames[self.i % len(frames)], WIDTH, HEIGHT, time.monotonic(), time.time())

        def close(self) -> None:
            self.ticker.kill()
            self.ticker.wait()
            os.close(self.r)

    logging.basicConfig(level=logging.WARNING)
    config = parse_config(
        "server: {listen: 127.0.0.1, port: 0, max_clients: 200}\n"
        f"cameras:\n  bench: {{width: {WIDTH}, height: {HEIGHT}, fps: {camera_fps},"
        " stop_delay: 60}\n"
    )
    source = TickerSource if ticker else ReplaySource
    daemon = pyimagestreamd.daemon.Daemon(config, source_factory=source)
    task = asyncio.ensure_future(daemon.run())
    await daemon.wait_ready()
    print(daemon.port, flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/replay.py")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--camera-fps", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--paced", action="store_true")
    parser.add_argument("--ticker", action="store_true", help="a device-like camera (above)")
    args = parser.parse_args()
    frames = load_frames(args.folder)
    asyncio.run(serve_replay(frames, args.camera_fps, args.interval, args.paced, args.ticker))


if __name__ == "__main__":
    main()
