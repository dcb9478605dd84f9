"""V4L2 streaming buffers, per frame: wait for one, dequeue it, read it, queue it again.

The per-frame step of the V4L2 source (v4l2.py). v4l2py (linuxpy) still does everything
once per open: format, buffers requested and mapped, STREAMON. Per frame, its reader
allocates two ctypes buffer structs (one for DQBUF, a copy for QBUF), builds a select()
set from the device object, looks up the ioctl's enum name for a debug line and wraps the
bytes in a Frame of its own; under TCG that was a measurable part of capture's CPU per
frame (README, "Benchmarks (VM)"). `StreamBuffers` does the same DQBUF / copy / QBUF on
the same fd and the same mappings with one struct allocated at open and reused, a poll
object registered once, and `fcntl.ioctl` called directly.

One thread at a time, never two (the struct is shared by every call): the capture thread
through the source's `read()` (raw formats), or, for a run the event loop reads
(loopread.py: MJPEG passthrough), the loop's thread through `read_ready()` while the
capture thread only watches and, before it closes the device, waits for the loop to stop
watching. Errors are
the plain `OSError`s of the ioctls (ENODEV after an unplug, EAGAIN when poll woke without
a buffer), which v4l2.py turns into reasons; a buffer is always queued again, whatever
reading it did.
"""

from __future__ import annotations

import fcntl
import math
import select
from collections.abc import Callable, Sequence
from typing import Any

from linuxpy.video import raw

# ioctl(fd, request, mutable buffer): fcntl.ioctl's signature, replaceable in unit tests.
Ioctl = Callable[[int, int, Any], Any]


class StreamBuffers:
    """The mapped buffers of one streaming capture device, dequeued one at a time."""

    def __init__(self, fd: int, maps: Sequence[Any], ioctl: Ioctl = fcntl.ioctl) -> None:
        self._fd = fd
        self._maps = maps
        self._ioctl = ioctl
        self._buf = raw.v4l2_buffer()
        self._buf.type = raw.BufType.VIDEO_CAPTURE
        self._buf.memory = raw.Memory.MMAP
        self._dqbuf = int(raw.IOC.DQBUF)
        self._qbuf = int(raw.IOC.QBUF)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        # The driver's frame counter of the last buffer dequeued.
        self.sequence = -1

    def wait(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the device to be readable; True if it is."""
        # Rounded up: a wait of 0.4 ms must not become a poll(0) spinning until the deadline.
        return bool(self._poll.poll(max(1, math.ceil(timeout * 1000))))

    def read(self) -> bytes:
        """Dequeue a buffer, copy out its bytes, queue it again.

        Raises BlockingIOError if no buffer is ready (poll also wakes for errors and events).
        """
        buf = self._buf
        self._ioctl(self._fd, self._dqbuf, buf)
        try:
            self.sequence = buf.sequence
            return self._maps[buf.index][: buf.bytesused]  # type: ignore[no-any-return]
        finally:
            self._ioctl(self._fd, self._qbuf, buf)

    def dequeue(self) -> memoryview:
        """Dequeue a buffer and return a view of its bytes; `requeue()` gives it back.

        For raw frames, converted straight from the driver's memory: release the view
        (and everything made from it without a copy) before calling `requeue()`.
        """
        buf = self._buf
        self._ioctl(self._fd, self._dqbuf, buf)
        self.sequence = buf.sequence
        return memoryview(self._maps[buf.index])[: buf.bytesused]

    def requeue(self) -> None:
        """Queue the buffer of the last `dequeue()` again."""
        self._ioctl(self._fd, self._qbuf, self._buf)
