"""A capture run whose frames the event loop reads: the capture thread only watches.

For a source with a `loop_fd()` (camera.py; V4L2 MJPEG passthrough: a non-blocking DQBUF
and a copy), the event loop reads each frame when the fd is readable (`read_ready()` in
the loop's thread, through the sink's `watch`) and delivers it there, which saves what a
frame costs to cross threads: a wake-up of the capture thread, then
`call_soon_threadsafe`'s self-pipe write and read and a wake-up of the loop (README,
"Benchmarks (VM)"). The capture thread keeps everything else: open, close and back-off
(camera.py, around `stream_in_loop`), control changes, the "no frames" timeout, the
heartbeat and stop. A read error in the loop ends the run from the capture thread, as any
other failure does.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from pyimagestreamd.cameratypes import READ_TIMEOUT, CameraError

if TYPE_CHECKING:
    from pyimagestreamd.camera import CaptureSource, FrameSink

# A source read by the event loop whose fd is readable this many times in a row without a
# frame (an error condition the driver reports through poll) is given up and reopened,
# instead of spinning the loop until the frame timeout.
MAX_EMPTY_WAKES = 100


def stream_in_loop(source: CaptureSource, sink: FrameSink, stop: threading.Event, fd: int) -> str:
    """Like CaptureSource._stream, but the event loop reads each frame when `fd` is
    readable; return "" on a stop request, or raise CameraError."""
    wake = source._wake
    watch = _LoopWatch(source, sink, wake)
    sink.watch(fd, watch.on_readable, source.loop_rearm())
    controls = source.controls
    controls.wake = wake
    try:
        while not stop.is_set():
            wake.clear()
            source.progress_at = time.monotonic()
            if watch.error is not None:
                raise watch.error
            source._apply_requested_controls(opening=False)
            now = source.clock.now()
            if now - watch.last_frame_at > source.frame_timeout:
                raise CameraError(f"no frames for {now - watch.last_frame_at:.0f} s")
            source.refresh_state()
            source.clock.wait(wake, READ_TIMEOUT)
    finally:
        controls.wake = None
        watch.done = True
        sink.unwatch(fd)
    return ""


class _LoopWatch:
    """One capture run's reads in the event loop; `on_readable` runs in the loop's thread.

    The capture thread reads `error` and `last_frame_at` (plain attributes: one writer).
    """

    def __init__(self, source: CaptureSource, sink: FrameSink, wake: threading.Event) -> None:
        self.source, self.sink, self.wake = source, sink, wake
        self.last_frame_at = source.clock.now()
        self.error: Exception | None = None
        self.done = False
        self._empty_wakes = 0

    def on_readable(self) -> bool:
        """Read the ready frame and deliver it; False when the loop should stop watching."""
        if self.done:
            return False
        try:
            frame = self.source.read_ready()
        except BlockingIOError:
            self._empty_wakes += 1
            if self._empty_wakes < MAX_EMPTY_WAKES:
                return True
            return self._fail(CameraError("the device signals frames but has none to give"))
        except Exception as exc:  # CameraError, or a bug: the capture thread reports it
            return self._fail(exc)
        self._empty_wakes = 0
        if frame is None:
            return True  # a dropped frame: like read(), it does not count as one that came
        self.last_frame_at = self.source.clock.now()
        try:
            self.source._deliver(self.sink, frame)
        except Exception as exc:
            return self._fail(exc)
        return True

    def _fail(self, exc: Exception) -> bool:
        self.error = exc
        self.done = True
        self.wake.set()
        return False
