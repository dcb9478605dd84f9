"""V4L2 camera source: a real device -> validated MJPEG or re-encoded JPEG Frames.

`V4L2Source` is the `CaptureSource` (camera.py) for a `/dev/video*` or stable
`/dev/v4l/by-id/...` path. Its hooks run in the camera's one capture thread: `open()`
negotiates a format (the camera's MJPEG passed through untouched when it has one at the
configured size, else YUYV / NV12 / YU12 re-encoded with simplejpeg from YUV planes),
selects the input, applies the configured controls and starts streaming; `read()` waits on
the device's fd with a bound (so a stop request or a silent camera is noticed) and dequeues
one buffer (v4l2buffers.py); `close()` releases everything, quietly for a device that is
already gone. `loop_fd()` offers the fd of an MJPEG passthrough camera to the event loop
(loopread.py), which then calls `read_ready()` for each frame.
Failures become `CameraError` with a one-line reason; camera.py logs it, shows the offline
card and retries with back-off, so an unplugged or busy camera comes back by itself.

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
from pyimagestreamd.v4l2controls import control_state, device_controls, set_values

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

log = logging.getLogger(__name__)
# linuxpy logs every open/close at INFO and warns about each pixel format it has no name
# for (vivid offers dozens): that is per-open noise, not something an operator acts on.
logging.getLogger("linuxpy").setLevel(logging.ERROR)

# Fourcc -> how frames of that format become JPEG.
PASSTHROUGH_FORMATS = ("MJPG", "JPEG")
RAW_FORMATS = encoder.RAW_FORMATS
# `format:` in the config -> fourccs it allows; "auto" tries them in this order.
CONFIG_FORMATS: dict[str, tuple[str, ...]] = {
    "auto": (*PASSTHROUGH_FORMATS, *RAW_FORMATS),
    "mjpeg": PASSTHROUGH_FORMATS,
    "yuyv": ("YUYV",),
    "nv12": ("NV12",),
    "yu12": ("YU12",),
}
BUFFER_COUNT = 4
# The driver name v4l2loopback reports (VIDIOC_QUERYCAP). Up to 0.13.2 (Debian bookworm
# has 0.12.7) its poll hooks the caller onto the frame wait queue only when no frame is
# ready; epoll hooks on once, when the fd is registered, so an fd registered while a frame
# was ready was never woken again (upstream's commit b07e2d7, "Refactor poll and fix #601",
# November 2024, calls poll_wait always). Such a device is registered anew after each read
# (loop_rearm).
LOOPBACK_DRIVER = "v4l2 loopback"
# How often the capture thread re-reads control values for /api/state (another program,
# v4l2-ctl say, may change them while we stream).
CONTROLS_REFRESH_INTERVAL = 10.0


def fourcc(code: int) -> str:
    """The four-character name of a V4L2 pixel format code."""
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


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


def candidate_formats(offered: list[str], wanted: str) -> list[str]:
    """The offered fourccs that the config's `format:` allows, best first."""
    return [code for code in CONFIG_FORMATS[wanted] if code in offered]


@dataclass(slots=True)
class Negotiated:
    """What open() agreed with the driver; read by describe() from other threads."""

    fourcc: str
    width: int
    height: int
    bytes_per_line: int
    fps: float | None
    device: str
    card: str = ""
    driver: str = ""
    input: int | None = None
    input_name: str = ""

    @property
    def is_passthrough(self) -> bool:
        return self.fourcc in PASSTHROUGH_FORMATS


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
                self._select_input(self.options.input)
            doing = "set format"
            self._negotiated = self._negotiate(path, real)
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
            info.update(
                device=neg.device,
                card=neg.card,
                driver=neg.driver,
                format=neg.fourcc,
                mode="passthrough" if neg.is_passthrough else "encode",
                read_in=self.read_in,
                width=neg.width,
                height=neg.height,
                fps=neg.fps,
                input=neg.input,
                input_name=neg.input_name,
            )
            if not neg.is_passthrough:
                info["yuv_range"] = self.options.yuv_range
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
        fps = f"{neg.fps:g} fps" if neg.fps else "driver's fps"
        how = (
            "MJPEG passthrough"
            if neg.is_passthrough
            else f"re-encode to JPEG quality {self.config.quality} ({self.options.yuv_range} range)"
        )
        where = (
            neg.device
            if neg.device == self.config.source
            else f"{self.config.source} -> {neg.device}"
        )
        return f"{where} ({neg.card}): {neg.fourcc} {neg.width}x{neg.height} at {fps}, {how}"

    # -- inside open() ---------------------------------------------------------------------

    def _select_input(self, index: int) -> None:
        inputs = self._device.info.inputs
        if index >= len(inputs):
            names = ", ".join(f"{i.index}: {i.name}" for i in inputs) or "none"
            raise CameraError(f"{self.config.source}: no input {index} (inputs: {names})")
        self._device.set_input(index)

    def _negotiate(self, path: str, real: str) -> Negotiated:
        cfg = self.config
        dev = self._device
        offered = [
            fourcc(int(f.pixel_format))
            for f in dev.info.buffer_formats(v4l2.BufferType.VIDEO_CAPTURE)
        ]
        candidates = candidate_formats(offered, self.options.format)
        if not candidates:
            have = ", ".join(offered) or "none (a v4l2loopback node without a producer?)"
            wanted = self.options.format
            raise CameraError(
                f"{path}: no usable format for format '{wanted}' (the camera offers: {have})"
            )
        # Prefer an exact size match in preference order; else the best format at the size
        # the driver proposes (TRY_FMT changes nothing on the device).
        chosen, size = candidates[0], None
        for code in candidates:
            tried = self._try_format(code, cfg.width, cfg.height)
            if tried is None:
                break  # the driver has no TRY_FMT: let S_FMT decide
            if tried == (cfg.width, cfg.height):
                chosen, size = code, tried
                break
        fmt = v4l2.raw.v4l2_format()
        fmt.type = v4l2.BufferType.VIDEO_CAPTURE
        fmt.fmt.pix.pixelformat = v4l2.raw.v4l2_fourcc(*chosen.ljust(4))
        fmt.fmt.pix.field = v4l2.Field.ANY
        fmt.fmt.pix.width, fmt.fmt.pix.height = size or (cfg.width, cfg.height)
        v4l2.set_raw_format(dev, fmt)
        got = dev.get_format(v4l2.BufferType.VIDEO_CAPTURE)
        got_code = fourcc(int(got.pixel_format))
        if got_code not in candidates:
            raise CameraError(f"{path}: the driver rejected {chosen} and offers {got_code} instead")
        width, height, bpl = got.width, got.height, got.bytes_per_line
        if got_code in RAW_FORMATS and (width % 2 or height % 2):
            raise CameraError(f"{path}: odd frame size {width}x{height} for {got_code}")
        fps: float | None = None
        try:
            dev.set_fps(v4l2.BufferType.VIDEO_CAPTURE, cfg.fps)
        except OSError as exc:  # many drivers have a fixed rate (ENOTTY / EINVAL)
            log.debug("camera %s: cannot set fps: %r", cfg.name, exc)
        try:
            fps = float(dev.get_fps(v4l2.BufferType.VIDEO_CAPTURE))
        except (OSError, ZeroDivisionError) as exc:
            log.debug("camera %s: cannot read fps: %r", cfg.name, exc)
        input_index: int | None = None
        input_name = ""
        try:
            input_index = dev.get_input()
            input_name = next((i.name for i in dev.info.inputs if i.index == input_index), "")
        except OSError:
            pass  # drivers without ENUMINPUT / G_INPUT (v4l2loopback)
        return Negotiated(
            fourcc=got_code,
            width=width,
            height=height,
            bytes_per_line=bpl,
            fps=fps,
            device=real,
            card=dev.info.card,
            driver=dev.info.driver,
            input=input_index,
            input_name=input_name,
        )

    def _try_format(self, code: str, width: int, height: int) -> tuple[int, int] | None:
        fmt = v4l2.raw.v4l2_format()
        fmt.type = v4l2.BufferType.VIDEO_CAPTURE
        fmt.fmt.pix.pixelformat = v4l2.raw.v4l2_fourcc(*code.ljust(4))
        fmt.fmt.pix.field = v4l2.Field.ANY
        fmt.fmt.pix.width, fmt.fmt.pix.height = width, height
        try:
            v4l2.try_raw_format(self._device, fmt)
        except OSError as exc:
            if exc.errno == errno.ENOTTY:
                return None
            raise
        if fourcc(fmt.fmt.pix.pixelformat) != code:
            return (-1, -1)
        return (fmt.fmt.pix.width, fmt.fmt.pix.height)

    def _controls(self) -> dict[str, Any]:
        return device_controls(self._device)

    def _apply_controls(self) -> None:
        cfg = self.config
        controls = self._controls()
        for name, value in self.options.controls:
            ctrl = controls.get(name)
            if ctrl is None:
                have = ", ".join(sorted(controls)) or "none"
                raise CameraError(
                    f"config error: cameras.{cfg.name}.controls.{name}: camera {cfg.name} has no "
                    f"control '{name}' (it has: {have})"
                )
            try:
                ctrl.value = value
            except (OSError, AttributeError, ValueError) as exc:
                # Not fatal: an inactive control (exposure while auto-exposure is on) is
                # refused by the driver, and the picture is still worth showing.
                log.warning("camera %s: cannot set control %s=%d: %s", cfg.name, name, value, exc)
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
