"""What a capture source and its consumers share: states, the error, the clock, the sink.

camera.py (the capture thread, `CaptureSource`) and loopread.py (a run the event loop
reads) both build on these; camera.py re-exports them, which is where the sources, the
runner and the hub import them from. No I/O here but naming a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import threading
import time
from collections.abc import Callable
from typing import Protocol

from pyimagestreamd.frame import Frame

# A read hook must return within this many seconds (None when no frame came), so that the
# thread notices a stop request and can report its heartbeat.
READ_TIMEOUT = 0.5

# prctl(2) option that names the calling thread in the kernel (at most 15 bytes).
_PR_SET_NAME = 15


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` in the kernel too, for `top -H`, `ps -L` and /proc.

    Python (before 3.14) names threads only for itself; with the kernel's name a capture
    thread that should not exist any more can be seen and counted from outside.
    """
    raw = name.encode("utf-8")[:15]
    # Not Linux, or no prctl: the name is only for people looking, so go on without it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, raw, 0, 0, 0)


class CameraState(enum.Enum):
    SLEEPING = "sleeping"  # no viewers: the device is closed
    STARTING = "starting"  # opened or opening, no frame yet
    LIVE = "live"  # frames are flowing
    OFFLINE = "offline"  # failed; retrying with back-off


class Clock:
    """Time as the capture loop sees it: the frame timeout and the back-off.

    Unit tests give a source a virtual clock, so "offline after 5 s without frames" and the
    back-off sequence are checked exactly and without waiting. (The watchdog heartbeat,
    `progress_at`, stays on real time: it is about real hangs.)
    """

    def now(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait `seconds` or until `stop` is set; True if it was set."""
        return stop.wait(seconds)


class CameraError(Exception):
    """The camera cannot deliver; the message is the one-line reason shown to users."""


class FrameSink(Protocol):
    """Receives what a capture run produces.

    `on_frame` / `on_state` are called from the capture thread or, for a source the event
    loop reads (`loop_fd`), from the loop's thread inside the `watch` callback; `watch` and
    `unwatch` only from the capture thread.
    """

    def on_frame(self, frame: Frame) -> None: ...

    def on_state(self, state: CameraState, reason: str) -> None: ...

    def watch(self, fd: int, on_readable: Callable[[], bool], rearm: bool = False) -> None:
        """Have the event loop call `on_readable()` whenever `fd` is readable, until it
        returns False or `unwatch(fd)`; with `rearm`, unregister and register `fd` again
        after a call until a registration found nothing ready (CaptureSource.loop_rearm)."""

    def unwatch(self, fd: int) -> None:
        """Stop watching `fd`; returns once the loop no longer calls back (fd may close)."""
