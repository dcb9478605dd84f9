"""Where the capture side's CPU per frame goes (run in the guest: tests/vm/run --exec).

v4l2loopback fed with the 1080p30 MJPEG clip; each case reads it for WINDOW seconds and
prints this process's CPU (all threads) per frame. Exploration for issue 9, not a test.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "guest"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import vmlib

from pyimagestreamd.config import parse_config
from pyimagestreamd.frame import Frame
from pyimagestreamd.v4l2 import V4L2Source

WINDOW = 6.0


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def source() -> V4L2Source:
    config = parse_config(
        f"cameras:\n  cam: {{source: {vmlib.LOOP_MJPEG}, width: 1920, height: 1080, fps: 30}}\n"
    )
    s = V4L2Source(config.cameras[0])
    s.open()
    s.read(5.0)
    return s


def lean_reader(s: V4L2Source, check: bool) -> Callable[[float], bytes | None]:
    """The package's per-frame step alone (v4l2buffers.StreamBuffers: poll, DQBUF, copy,
    QBUF on one reused struct), without V4L2Source's bookkeeping and Frame."""
    buffers = s._buffers
    assert buffers is not None
    checker = s._checker

    def read(timeout: float) -> bytes | None:
        if not buffers.wait(timeout):
            return None
        data = buffers.read()
        return checker.check(data) if check else data

    return read


def v4l2py_reader(s: V4L2Source) -> Callable[[float], bytes | None]:
    """main's per-frame path: v4l2py's FrameReader.read (select, DQBUF, copy, QBUF)."""
    reader = s._capture.buffer.frame_reader
    checker = s._checker

    def read(timeout: float) -> bytes | None:
        frame = reader.read(timeout)
        if frame is None:
            return None
        s._count_sequence(frame.frame_nb)
        return checker.check(frame.data)

    return read


def loop_case(name: str, read: Callable[[float], object]) -> None:
    n = 0
    c0, t0 = cpu(), time.monotonic()
    while time.monotonic() < t0 + WINDOW:
        if read(1.0) is not None:
            n += 1
    report(name, n, cpu() - c0, time.monotonic() - t0)


def report(name: str, n: int, used: float, seconds: float) -> None:
    print(f"probe: {name:<48} {1000 * used / max(n, 1):6.3f} ms CPU/frame "
          f"({n / seconds:5.1f} fps)", flush=True)  # fmt: skip


def thread_case(name: str, read: Callable[[float], object], wrap: bool) -> None:
    """A capture thread handing each frame to an event loop with call_soon_threadsafe."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = [0]
        stop = threading.Event()

        def deliver(gen: int, frame: object) -> None:
            got[0] += 1

        def run() -> None:
            while not stop.is_set():
                data = read(0.5)
                if data is not None:
                    frame = Frame(data, 1920, 1080, time.monotonic(), time.time()) if wrap else data  # type: ignore[arg-type]
                    loop.call_soon_threadsafe(deliver, 1, frame)

        t = threading.Thread(target=run)
        t.start()
        await asyncio.sleep(1.0)
        n0, c0, t0 = got[0], cpu(), time.monotonic()
        await asyncio.sleep(WINDOW)
        report(name, got[0] - n0, cpu() - c0, time.monotonic() - t0)
        stop.set()
        await asyncio.to_thread(t.join)

    asyncio.run(main())


def reader_case(name: str, s: V4L2Source) -> None:
    """The device's fd watched by the event loop: V4L2Source.read_ready (DQBUF, copy, QBUF,
    check, Frame) in a reader callback, no thread."""
    fd = s.loop_fd()
    assert fd is not None

    async def main() -> None:
        got = [0]

        def on_readable() -> None:
            try:
                frame = s.read_ready()
            except BlockingIOError:
                return
            if frame is not None:
                got[0] += 1

        loop = asyncio.get_running_loop()
        loop.add_reader(fd, on_readable)
        await asyncio.sleep(1.0)
        n0, c0, t0 = got[0], cpu(), time.monotonic()
        await asyncio.sleep(WINDOW)
        report(name, got[0] - n0, cpu() - c0, time.monotonic() - t0)
        loop.remove_reader(fd)

    asyncio.run(main())


def main() -> None:
    vmlib.load_v4l2loopback()
    with vmlib.clip_feeder():
        time.sleep(2)
        for r in range(2):
            print(f"probe: round {r}", flush=True)
            s = source()
            try:
                loop_case("main: v4l2py FrameReader.read + check", v4l2py_reader(s))
                loop_case("V4L2Source.read() loop (this tree)", s.read)
                loop_case("StreamBuffers wait+read, no check", lean_reader(s, False))
                loop_case("StreamBuffers wait+read + MjpegChecker", lean_reader(s, True))
                thread_case("thread v4l2py read+check + Frame + call_soon_threadsafe",
                            v4l2py_reader(s), True)  # fmt: skip
                thread_case("thread V4L2Source.read + call_soon_threadsafe", s.read, False)
                thread_case("thread StreamBuffers+check + Frame + call_soon_threadsafe",
                            lean_reader(s, True), True)  # fmt: skip
                reader_case("loop.add_reader + V4L2Source.read_ready (no thread)", s)
            finally:
                s.close()
    # An idle feeder's own cost is not in these figures (another process).
    print("probe: done")


if __name__ == "__main__":
    main()
