"""V4L2 camera source: a real device -> validated MJPEG or re-encoded JPEG Frames.

`V4L2Source` is the `CaptureSource` (camera.py) for a `/dev/video*` or stable
`/dev/v4l/by-id/...` path. Its hooks run in the camera's one capture thread: `open()`
selects the input, has v4l2format.py negotiate a format (the camera's MJPEG passed through
untouched when it has one at the configured size, else YUYV / NV12 / YU12 re-encoded with
simplejpeg from YUV planes), applies the configured controls (v4l2controls.py) and starts
streaming; `read()` waits on the device's fd with a bound (so a stop request or a silent
camera is noticed) and dequeues one buffer (v4l2buffers.py); `close()` releases
everything, quietly for a device that is already gone. `loop_fd()` offers the fd of an
MJPEG passthrough camera to the event loop (loopread.py), which then calls `read_ready()`
for each frame. Failures become `CameraError` with a one-line reason (`reason_for`);
camera.py logs it, shows the offline card and retries with back-off, so an unplugged or
busy camera comes back by itself.

Device access goes through v4l2py, which since 3.0 re-exports linuxpy.video (both pinned).
The keys of a V4L2 camera are validated in v4l2config.py; `--list-cameras` lives in
cameralist.py; raw frames are unpacked (padded rows included) by encoder.py.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

with warnings.catch_warnings():
    # v4l2py 3.x warns on import that it is a shim over linuxpy: both are pinned on purpose.
    warnings.filterwarnings("ignore", "v4l2py is no longer being maintained", UserWarning)
    from v4l2py import device as v4l2

from pyimagestreamd import encoder
from pyimagestreamd.camera import CameraError, CaptureSource
from pyimagestreamd.controls import Applied, defaults
from pyimagestreamd.frame import Frame
from pyimagestreamd.mjpeg import MjpegChecker
from pyimagestreamd.v4l2buffers import StreamBuffers
from pyimagestreamd.v4l2config import V4L2Options
from pyimagestreamd.v4l2controls import (
    apply_configured,
    control_state,
    device_controls,
    set_values,
)
from pyimagestreamd.v4l2format import Negotiated, negotiate, select_input

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

log = logging.getLogger(__name__)
# linuxpy logs every open/close at INFO and warns about each pixel format it has no name
# for (vivid offers dozens): that is per-open noise, not something an operator acts on.
logging.getLogger("linuxpy").setLevel(logging.ERROR)

BUFFER_COUNT = 4
# The driver name v4l2loopback reports (VIDIOC_QUERYCAP). Up to 0.13.2 (Debian bookworm
# has 0.12.7) its poll hooks the caller onto the frame wait queue only when no frame is
# ready; epoll hooks on once, when the fd is registered, so an fd registered while a frame
# was ready was never woken again (upstream's commit b07e2d7, "Refactor poll and fix #601",
# November 2024, calls poll_wait always). Such a device is registered anew after a read
# until a registration found no frame ready (loop_rearm; runner.py).
LOOPBACK_DRIVER = "v4l2 loopback"
# How often the capture thread re-reads control values for /api/state (another program,
# v4l2-ctl say, may change them while we stream).
CONTROLS_REFRESH_INTERVAL = 10.0


def reason_for(exc: OSError, path: str) -> str:
    """A one-line, user-facing reason for a failed device operation."""
    code = exc.errno
    if code == errno.ENOENT:
        return f"{path}: no such device (not plugged in?)"
    if code in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied (is the daemon's user in the 'video' group?)"
    if code == errno.EBUSY:
        return f"{path}: device busy: another program is using it"
    if code in (errno.ENODEV, errno.ENXIO):
        return f"{path}: device disconnected"
    if code == errno.ENOTTY:
        return f"{path}: not a V4L2 device"
    return f"{path}: {exc.strerror or exc}"


@dataclass(slots=True)
class _Stats:
    sequence_gaps: int = 0
    short_frames: int = 0
    last_sequence: int = -1
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)
    controls_at: float = 0.0


class V4L2Source(CaptureSource):
    """One V4L2 capture device; the hooks run in the capture thread, `read_ready` in the
    event loop's while the capture thread waits."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        opts = config.options
        self.options = opts if isinstance(opts, V4L2Options) else V4L2Options()
        self._device: Any = None
        self._capture: Any = None
        self._buffers: StreamBuffers | None = None
        self._negotiated: Negotiated | None = None
        self._checker = MjpegChecker()
        self._stats = _Stats()
        self.counters["frames_dropped_invalid"] = 0

    # -- hooks -----------------------------------------------------------------------------

    def open(self) -> None:
        cfg = self.config
        # Resolved at every open: after a re-plug a by-id link may point at another videoN.
        path = cfg.source
        real = os.path.realpath(path)
        doing = "open"
        try:
            self._device = v4l2.Device(real)
            self._device.open()
            doing = "query capabilities"
            caps = self._device.info.device_capabilities
            if v4l2.Capability.VIDEO_CAPTURE not in caps:
                raise CameraError(f"{path}: not a video capture device (no capture capability now)")
            if self.options.input is not None:
                doing = f"select input {self.options.input}"
                select_input(self._device, self.options.input, path)
            doing = "set format"
            self._negotiated = negotiate(self._device, cfg, self.options.format, path, real)
            doing = "set controls"
            self._apply_controls()
            doing = "request buffers"
            # linuxpy queries as many buffers as it asked for, but drivers may grant fewer
            # (v4l2loopback: 2 by default): ask first, then use what was granted.
            granted = v4l2.request_buffers(
                self._device, v4l2.BufferType.VIDEO_CAPTURE, v4l2.Memory.MMAP, BUFFER_COUNT
            ).count
            v4l2.free_buffers(self._device, v4l2.BufferType.VIDEO_CAPTURE, v4l2.Memory.MMAP)
            doing = "start streaming"
            self._capture = v4l2.VideoCapture(self._device, size=max(1, granted))
            self._capture.open()
            self._buffers = StreamBuffers(self._device.fileno(), self._capture.buffer.buffers)
        except OSError as exc:
            reason = reason_for(exc, path)
            if exc.errno not in (
                errno.ENOENT,
                errno.EACCES,
                errno.EPERM,
                errno.ENODEV,
                errno.EBUSY,
            ):
                reason += f" (while trying to {doing})"
            raise CameraError(reason) from exc
        self._stats.last_sequence = -1
        self._stats.controls_at = time.monotonic()

    def read(self, timeout: float) -> Frame | None:
        assert self._buffers is not None
        buffers = self._buffers
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if not buffers.wait(left):
                    return None
                frame = self.read_ready()
            except BlockingIOError:
                continue  # woken without a buffer ready (poll said readable for an event)
            if frame is None:
                continue
            self.refresh_state()
            return frame
        return None

    def loop_fd(self) -> int | None:
        # MJPEG passthrough costs a DQBUF and a copy per frame: cheap enough to do in the
        # event loop, which then needs no hand-over from this thread (camera.py). A raw
        # frame's conversion would block the loop for tens of milliseconds: the thread.
        neg = self._negotiated
        if neg is None or not neg.is_passthrough or self._device is None:
            return None
        fd: int = self._device.fileno()
        return fd

    def loop_rearm(self) -> bool:
        neg = self._negotiated
        return neg is not None and neg.driver == LOOPBACK_DRIVER

    def read_ready(self) -> Frame | None:
        assert self._buffers is not None and self._negotiated is not None
        neg, buffers = self._negotiated, self._buffers
        try:
            jpeg = self._next_jpeg(buffers, neg)
        except BlockingIOError:
            raise
        except OSError as exc:
            raise CameraError(reason_for(exc, self.config.source)) from exc
        captured_at, wall = time.monotonic(), time.time()
        self._count_sequence(buffers.sequence)
        if not jpeg:
            self.counters["frames_dropped"] += 1
            self.counters["frames_dropped_invalid"] += 1
            return None
        return Frame(jpeg, neg.width, neg.height, captured_at, wall)

    def refresh_state(self) -> None:
        now = time.monotonic()
        if now - self._stats.controls_at > CONTROLS_REFRESH_INTERVAL:
            self._stats.controls_at = now
            self._stats.controls = self._read_controls()

    def _next_jpeg(self, buffers: StreamBuffers, neg: Negotiated) -> bytes:
        """The ready buffer as JPEG, or b"" for one that had to be dropped."""
        if neg.is_passthrough:
            # The frame's bytes are copied out of the driver's buffer (which goes back to
            # the driver at once) and checked; nothing is decoded.
            return self._checker.check(buffers.read()) or b""
        # Raw frames are converted straight from the mapped driver buffer, before it is
        # queued again: a 1080p YUYV frame is 4 MB, and copying it first costs as much
        # memory bandwidth as the conversion itself.
        view = buffers.dequeue()
        try:
            planes = self._raw_planes(view, neg)
        finally:
            del view  # nothing may point into the buffer once the driver has it back
            buffers.requeue()
        if planes is None:
            return b""
        return encoder.encode_planes(planes, self.config.quality)

    def close(self) -> None:
        capture, device = self._capture, self._device
        self._capture = self._buffers = self._device = None
        # Each step on its own: after an unplug, STREAMOFF fails with ENODEV, and the
        # buffers and the fd must still be released.
        # Broad excepts: whatever goes wrong releasing buffers, the fd must still be closed,
        # or the device stays busy for the next attempt.
        if capture is not None:
            try:
                capture.close()
            except Exception as exc:
                log.debug("camera %s: stopping capture: %r", self.config.name, exc)
                try:
                    capture.disarm()
                except Exception as exc2:
                    log.debug("camera %s: releasing buffers: %r", self.config.name, exc2)
        if device is not None:
            try:
                device.close()
            except Exception as exc:
                log.debug("camera %s: closing device: %r", self.config.name, exc)

    # -- what the daemon shows -------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        neg = self._negotiated
        info: dict[str, Any] = {"source": self.config.source}
        if neg is not None:
            info.update(neg.state(self.read_in, self.options.yuv_range))
        info["controls"] = self._stats.controls
        info["frames"] = {
            **self._checker.counters(),
            "short_raw": self._stats.short_frames,
            "sequence_gaps": self._stats.sequence_gaps,
            # The driver's frame counter (for v4l2loopback, the producer's): the source rate.
            "sequence": self._stats.last_sequence,
        }
        return info

    def format_summary(self) -> str:
        neg = self._negotiated
        if neg is None:
            return super().format_summary()
        return neg.summary(self.config.source, self.config.quality, self.options.yuv_range)

    # -- inside open() ---------------------------------------------------------------------

    def _controls(self) -> dict[str, Any]:
        return device_controls(self._device)

    def _apply_controls(self) -> None:
        apply_configured(self._controls(), self.options.controls, self.config.name)
        self._stats.controls = self._read_controls()

    def _read_controls(self) -> dict[str, dict[str, Any]]:
        return {key: control_state(ctrl) for key, ctrl in self._controls().items()}

    # -- controls from the settings API (camera.py calls these in the capture thread) -------

    def control_specs(self) -> dict[str, dict[str, Any]]:
        return self._stats.controls

    def set_controls(self, values: dict[str, int]) -> Applied:
        if self._device is None:
            return Applied(errors=dict.fromkeys(values, "the camera is not open"))
        result = set_values(self._controls(), values)
        self._stats.controls = self._read_controls()
        self._stats.controls_at = time.monotonic()
        return result

    def default_controls(self) -> dict[str, int]:
        # The configured value where the YAML has one, the driver's default elsewhere.
        specs = self._stats.controls
        configured = {k: v for k, v in self.options.controls if k in specs}
        return {**defaults(specs), **configured}

    # -- inside read() ---------------------------------------------------------------------

    def _count_sequence(self, sequence: int) -> None:
        last = self._stats.last_sequence
        if last >= 0 and sequence > last + 1:
            self._stats.sequence_gaps += sequence - last - 1
        self._stats.last_sequence = sequence

    def _raw_planes(self, data: memoryview, neg: Negotiated) -> encoder.Planes | None:
        """YUV planes that own their memory (the buffer goes back to the driver next)."""
        planes = encoder.unpack_planes(data, neg.fourcc, neg.width, neg.height, neg.bytes_per_line)
        if planes is None:
            self._stats.short_frames += 1
            return None
        if self.options.yuv_range == "limited":
            return encoder.expand_range(planes)  # new arrays: nothing points into the buffer
        y, u, v = planes
        return y.copy(), u.copy(), v.copy()
