"""Where the capture side's CPU per frame goes (run in the guest: tests/vm/run --exec).

v4l2loopback fed with the 1080p30 MJPEG clip; each case reads it for WINDOW seconds and
prints this process's CPU (all threads) per frame. Exploration for issue 9, not a test.
"""

from __future__ import annotations

import asyncio
import fcntl
import resource
import select
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
from pyimagestreamd.v4l2 import V4L2Source, v4l2

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
    fd = s._device.fileno()
    maps = s._capture.buffer.buffers
    buf = v4l2.raw.v4l2_buffer()
    buf.type = v4l2.BufferType.VIDEO_CAPTURE
    buf.memory = v4l2.Memory.MMAP
    dq, q = int(v4l2.IOC.DQBUF), int(v4l2.IOC.QBUF)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    ioctl = fcntl.ioctl
    checker = s._checker

    def read(timeout: float) -> bytes | None:
        if not poller.poll(int(timeout * 1000)):
            return None
        ioctl(fd, dq, buf)
        data = maps[buf.index][: buf.bytesused]
        ioctl(fd, q, buf)
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
    """The device's fd watched by the event loop: DQBUF in a reader callback, no thread."""
    fd = s._device.fileno()
    maps = s._capture.buffer.buffers
    buf = v4l2.raw.v4l2_buffer()
    buf.type = v4l2.BufferType.VIDEO_CAPTURE
    buf.memory = v4l2.Memory.MMAP
    dq, q = int(v4l2.IOC.DQBUF), int(v4l2.IOC.QBUF)
    checker = s._checker

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = [0]

        def on_readable() -> None:
            try:
                fcntl.ioctl(fd, dq, buf)
            except BlockingIOError:
                return
            data = maps[buf.index][: buf.bytesused]
            fcntl.ioctl(fd, q, buf)
            if checker.check(data) is not None:
                Frame(data, 1920, 1080, time.monotonic(), time.time())
                got[0] += 1

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
                loop_case("lean poll+DQBUF+copy+QBUF, no check", lean_reader(s, False))
                loop_case("lean poll+DQBUF+copy+QBUF + MjpegChecker", lean_reader(s, True))
                thread_case("thread v4l2py read+check + Frame + call_soon_threadsafe",
                            v4l2py_reader(s), True)  # fmt: skip
                thread_case("thread V4L2Source.read + call_soon_threadsafe", s.read, False)
                thread_case("thread lean+check + Frame + call_soon_threadsafe",
                            lean_reader(s, True), True)  # fmt: skip
                reader_case("loop.add_reader lean+check + Frame (no thread)", s)
            finally:
                s.close()
    # An idle feeder's own cost is not in these figures (another process).
    print("probe: done")


if __name__ == "__main__":
    main()
