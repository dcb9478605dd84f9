"""Capture sources: ONE thread per camera that turns a device into a stream of Frames.

`CaptureSource` owns the thread, its stop flag, the retry back-off and the health heartbeat;
a concrete source (the V4L2 camera in v4l2.py, the test pattern in testpattern.py) only says
how to open, read one frame and close; sources.py is the registry that builds them, this
base module imports none of them. The thread hands every frame and state change to a
`FrameSink` — in the daemon, the runner (runner.py) that forwards them to the event loop
with `call_soon_threadsafe`. A source whose frames are cheap to take (a non-blocking read
and a copy: V4L2 MJPEG passthrough) may offer a `loop_fd()`: the sink then has the event
loop read it (`read_ready()` in the loop's thread, the frame delivered there with no
hand-over), and the thread only watches (loopread.py). This module knows nothing of asyncio.

Concurrency contract: `ensure_started()` / `ensure_stopped()` are called from one thread at
a time (the runner serialises them); the `open`/`read`/`close` hooks run only in the capture
thread, `read_ready` only in the event loop's, while the capture thread waits;
`describe()`, `counters` and `is_healthy()` may be read from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from pyimagestreamd import loopread
from pyimagestreamd.cameratypes import (
    READ_TIMEOUT,
    CameraError,
    CameraState,
    Clock,
    FrameSink,
    name_os_thread,
)
from pyimagestreamd.controls import Applied, ControlRequests, answer, defaults
from pyimagestreamd.frame import Frame
from pyimagestreamd.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

# The shared names (cameratypes.py) are imported from here by sources, runner and hub.
__all__ = [
    "READ_TIMEOUT",
    "RETRY_DELAYS",
    "CameraError",
    "CameraState",
    "CaptureSource",
    "Clock",
    "FrameSink",
]

log = logging.getLogger(__name__)

# Waits between reconnect attempts, then the last one forever: quick to recover from a
# re-plug, gentle on a camera that is gone for good.
RETRY_DELAYS = (0.5, 1.0, 2.0, 3.0, 5.0)


class CaptureSource(ABC):
    """Runs one capture thread for one camera; subclasses implement open/read/close."""

    clock = Clock()

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Wakes the capture thread while the event loop reads (stop request, read failure).
        self._wake = threading.Event()
        self._live = False
        # Where the current capture run reads its frames, for /api/state.
        self.read_in = ""
        # Heartbeat for the watchdog: advanced by the capture thread at every turn of its
        # loop, including while it waits in back-off, so a stale value means a hung thread.
        self.progress_at = time.monotonic()
        self.counters: dict[str, int] = {
            "captures_started": 0,
            "captures_stopped": 0,
            "frames_captured": 0,
            "frames_dropped": 0,
            "errors": 0,
        }
        self.last_size = (config.width, config.height)
        self.frame_timeout = max(5.0, 5.0 / config.fps)
        self._attempt = 0
        # Control changes from the settings API; the runner puts its own here, so that
        # what was asked for survives a reload that replaces the source.
        self.controls = ControlRequests()
        self._control_log = RateLimitedLog(log)  # capture thread only

    # -- lifecycle, called by the runner -------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ensure_started(self, sink: FrameSink) -> None:
        """Start the capture thread if it is not running."""
        if self.is_running:
            return
        self._stop = threading.Event()
        self.progress_at = time.monotonic()
        self.counters["captures_started"] += 1
        self._thread = threading.Thread(
            target=self._run,
            args=(sink, self._stop),
            name=f"capture-{self.config.name}",
            daemon=True,
        )
        self._thread.start()

    def ensure_stopped(self, timeout: float = 5.0) -> bool:
        """Stop the capture thread and wait for it; False if it did not end in `timeout`."""
        thread = self._thread
        if thread is None:
            return True
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.error(
                "camera %s: capture thread did not stop within %.0f s", self.config.name, timeout
            )
            return False
        self._thread = None
        self.counters["captures_stopped"] += 1
        return True

    def is_healthy(self, max_stall: float) -> bool:
        """False only if the capture thread runs but has not turned for `max_stall` seconds."""
        if not self.is_running:
            return True
        return time.monotonic() - self.progress_at < max_stall

    def describe(self) -> dict[str, Any]:
        """What /api/state shows about this source beyond the hub's counters."""
        return {"source": self.config.source}

    # -- hooks, called in the capture thread only ----------------------------------------

    @abstractmethod
    def open(self) -> None:
        """Open the device; raise CameraError with a reason if it cannot be used."""

    @abstractmethod
    def read(self, timeout: float) -> Frame | None:
        """Return the next frame, or None if none came within `timeout` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; must not raise for a device that is already gone."""

    # -- reading in the event loop instead (a source that can; loopread.py) --------

    def loop_fd(self) -> int | None:
        """After open(): a non-blocking fd the event loop may watch instead of this thread
        calling read(), or None (the default) to read in the capture thread."""
        return None

    def loop_rearm(self) -> bool:
        """True if the loop must register `loop_fd()` anew after a read until it registered
        it while nothing was ready: for a driver whose poll hooks a watcher onto its wait
        queue only when nothing is ready, so that epoll, which hooks on only once, at
        registration, would miss every later frame of an fd registered with one ready."""
        return False

    def read_ready(self) -> Frame | None:
        """Event-loop thread, `loop_fd()` readable: the frame that is ready, None for one
        dropped; BlockingIOError if none was ready, CameraError if the camera failed."""
        raise NotImplementedError

    def refresh_state(self) -> None:
        """Capture thread, about twice a second while the event loop reads: chores that
        would otherwise come between two reads (re-reading control values)."""
        return

    # -- controls (controls.py); a source without any keeps these defaults -----------------

    def control_specs(self) -> dict[str, dict[str, Any]]:
        """The controls as /api/state lists them, by config name (any thread; may be {}
        before the first open)."""
        return {}

    def set_controls(self, values: dict[str, int]) -> Applied:
        """Apply `values` in order, read them back; capture thread only, never raises."""
        return Applied(errors=dict.fromkeys(values, "this camera has no controls"))

    def default_controls(self) -> dict[str, int]:
        """What "reset" returns the controls to."""
        return defaults(self.control_specs())

    def offline_card(self, reason: str) -> Frame:
        """The picture shown instead of the camera's while it is offline."""
        from pyimagestreamd.card import offline_card  # noqa: PLC0415 - import cycle

        width, height = self.last_size
        return offline_card(width, height, f"{self.config.name}: {reason}", self.config.quality)

    # -- the capture thread --------------------------------------------------------------

    def _run(self, sink: FrameSink, stop: threading.Event) -> None:
        name = self.config.name
        name_os_thread(f"capture-{name}")
        self._attempt = 0
        last_reason = ""
        sink.on_state(CameraState.STARTING, "")
        while not stop.is_set():
            self.progress_at = time.monotonic()
            reason = ""
            try:
                self.open()
                self._apply_requested_controls(opening=True)
                reason = self._stream(sink, stop)
            except CameraError as exc:
                reason = str(exc)
            except Exception as exc:  # a bug or an unforeseen driver error must not kill capture
                reason = f"unexpected error: {exc!r}"
                log.exception("camera %s: unexpected error in capture", name)
            finally:
                try:
                    self.close()
                except Exception as exc:  # closing a vanished device fails too (ENODEV)
                    log.debug("camera %s: close failed: %r", name, exc)
                # Changes that came too late for this run are kept for the next open.
                self.controls.settle_unapplied()
            if stop.is_set():
                break
            self.counters["errors"] += 1
            if reason != last_reason:
                # Once per reason, not once per retry: a camera unplugged for a night would
                # otherwise write a line every 5 s.
                log.warning("camera %s offline: %s", name, reason)
                last_reason = reason
            sink.on_state(CameraState.OFFLINE, reason)
            try:
                sink.on_frame(self.offline_card(reason))
            except Exception:
                log.exception("camera %s: cannot draw the offline card", name)
            delay = RETRY_DELAYS[min(self._attempt, len(RETRY_DELAYS) - 1)]
            self._attempt += 1
            deadline = self.clock.now() + delay
            # In steps of READ_TIMEOUT, so a stop request is noticed within half a second.
            while not stop.is_set() and (left := deadline - self.clock.now()) > 0:
                self.progress_at = time.monotonic()
                self.controls.settle_unapplied()
                self.clock.wait(stop, min(left, READ_TIMEOUT))
        log.debug("camera %s: capture thread ends", name)

    def _stream(self, sink: FrameSink, stop: threading.Event) -> str:
        """Read frames until stopped; return "" on a stop request, or raise CameraError."""
        self._live = False
        fd = self.loop_fd()
        if fd is not None:
            self.read_in = "event loop"
            return loopread.stream_in_loop(self, sink, stop, fd)
        self.read_in = "capture thread"
        last_frame_at = self.clock.now()
        while not stop.is_set():
            # Between two reads, the only time the device is free: at most one read
            # (READ_TIMEOUT) after the request, and the next frame already shows it.
            self._apply_requested_controls(opening=False)
            frame = self.read(READ_TIMEOUT)
            now = self.clock.now()
            self.progress_at = time.monotonic()
            if frame is None:
                if now - last_frame_at > self.frame_timeout:
                    raise CameraError(f"no frames for {now - last_frame_at:.0f} s")
                continue
            last_frame_at = now
            self._deliver(sink, frame)
        return ""

    def _deliver(self, sink: FrameSink, frame: Frame) -> None:
        """Count a frame and hand it over; the first one of a run makes the camera live."""
        self.counters["frames_captured"] += 1
        self.last_size = (frame.width, frame.height)
        if not self._live:
            self._live = True
            self._attempt = 0  # back-off starts short again after a good stretch
            log.info("camera %s live: %s", self.config.name, self.format_summary())
            sink.on_state(CameraState.LIVE, "")
        sink.on_frame(frame)

    def _apply_requested_controls(self, opening: bool) -> None:
        reset, values, waiting = self.controls.take(opening)
        result: Applied | None = None
        try:
            if reset:
                # Only the controls that are not there already (a driver may refuse some
                # while streaming) and that are active: an inactive one is driven by an
                # automatic mode (gain under auto gain), which setting it does not stop.
                specs = self.control_specs()
                moved = {
                    k: v
                    for k, v in self.default_controls().items()
                    if specs.get(k, {}).get("value") != v and not specs.get(k, {}).get("inactive")
                }
                values = {**moved, **values}
            result = self.set_controls(values) if values else Applied()
            if result.errors and not waiting:  # restored at open: nobody else is told
                name = self.config.name
                for control, error in result.errors.items():
                    self._control_log.warning(
                        control, "camera %s: control %s not set: %s", name, control, error
                    )
        finally:
            for future in waiting:
                answer(future, result)

    def format_summary(self) -> str:
        """One line on what was negotiated, for the log."""
        width, height = self.last_size
        return f"{width}x{height}"
