"""libcamera session: one camera opened through the untyped Python bindings, and the choices
made on opening it (which camera, which format).

The native libcamera source (libcamerasource.py) keeps one `Session` per capture run, in its
capture thread only: `start()` acquires the camera, configures one stream in the best format
it offers (`choose_format`: YUV420 or NV12, else 24-bit RGB), allocates its buffers, maps
them and queues one request per buffer; `completed()` hands back the requests that came in,
`data()` a completed request's frame as a view of the mapped planes, `requeue()` gives it
back; `close()` undoes each step even if one before it failed. The bindings
(`python3-libcamera`) have no types and may be missing: `import_bindings` imports them on
use, and every use of them is in this module, the only place `Any` is allowed.
"""

from __future__ import annotations

import logging
import mmap
from typing import Any

from pyimagestreamd.cameratypes import CameraError

log = logging.getLogger(__name__)

MISSING = (
    "python3-libcamera is not installed (Debian trixie or Raspberry Pi OS: apt install"
    " python3-libcamera; the daemon must run on that system's python3)"
)
# libcamera's names, best first. YUV420 (I420) and NV12 are encoded straight from their
# planes (no colour conversion); the 24-bit formats are DRM names, so libcamera's BGR888 is
# R, G, B in memory and its RGB888 is B, G, R.
YUV_FORMATS = {"YUV420": "YU12", "NV12": "NV12"}
RGB_FORMATS = {"BGR888": "RGB", "RGB888": "BGR"}
PREFERRED = (*YUV_FORMATS, *RGB_FORMATS)


def choose_format(offered: list[str]) -> str | None:
    """The format to ask for among those a camera offers, or None if it has none we encode."""
    return next((f for f in PREFERRED if f in offered), None)


def pick_camera(ids: list[str], wanted: str) -> int:
    """Index of the camera `wanted` names ("" the first, a number an index, else an id)."""
    if not ids:
        raise CameraError("libcamera: no camera found (cam -l lists none)")
    if not wanted:
        return 0
    if wanted.isdigit():
        if int(wanted) < len(ids):
            return int(wanted)
    elif wanted in ids:
        return ids.index(wanted)
    raise CameraError(f"libcamera: no camera {wanted!r} (cameras: {', '.join(ids)})")


def reason(what: str, exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"libcamera: {what}: {text}"[:300]


class Session:
    """One open camera: everything that touches the untyped bindings lives here."""

    def __init__(self, lc: Any) -> None:
        self.lc = lc
        self.manager: Any = lc.CameraManager.singleton()
        self.camera: Any = None
        self.camera_id = ""
        self.allocator: Any = None
        self.stream: Any = None
        self.requests: list[Any] = []
        self.maps: dict[int, mmap.mmap] = {}
        self.started = False
        self.format = ""
        self.width = self.height = self.stride = 0

    def start(self, wanted: str, width: int, height: int, fps: int, count: int) -> None:
        """Acquire, configure, allocate, map, start, queue; close() undoes what was done."""
        lc = self.lc
        cameras = list(self.manager.cameras)
        self.camera = cameras[pick_camera([c.id for c in cameras], wanted)]
        camera, self.camera_id = self.camera, str(self.camera.id)
        self.camera = None  # released by close() only once acquired
        try:
            camera.acquire()
        except Exception as exc:  # EBUSY: another process holds it
            raise CameraError(reason(f"cannot acquire {self.camera_id}", exc)) from None
        self.camera = camera
        config = self.camera.generate_configuration([lc.StreamRole.VideoRecording])
        stream_config = config.at(0)
        offered = [str(f) for f in stream_config.formats.pixel_formats]
        fmt = choose_format(offered)
        if fmt is None:
            raise CameraError(f"libcamera: no usable format (offered: {', '.join(offered)})")
        stream_config.pixel_format = lc.PixelFormat(fmt)
        stream_config.size = lc.Size(width, height)
        stream_config.buffer_count = count
        if config.validate() == lc.CameraConfiguration.Status.Invalid:
            raise CameraError(f"libcamera: {fmt} {width}x{height} is not a valid configuration")
        self.camera.configure(config)
        self.format = str(stream_config.pixel_format)
        if self.format not in PREFERRED:  # adjusted to something we cannot encode
            raise CameraError(f"libcamera: camera adjusted the format to {self.format}")
        self.width = int(stream_config.size.width)
        self.height = int(stream_config.size.height)
        self.stride = int(stream_config.stride)
        self.stream = stream_config.stream
        self.allocator = lc.FrameBufferAllocator(self.camera)
        if self.allocator.allocate(self.stream) <= 0:
            raise CameraError("libcamera: cannot allocate frame buffers")
        for buffer in self.allocator.buffers(self.stream):
            request = self.camera.create_request()
            request.add_buffer(self.stream, buffer)
            self.requests.append(request)
            for plane in buffer.planes:
                if plane.fd not in self.maps:
                    size = max(p.offset + p.length for p in buffer.planes if p.fd == plane.fd)
                    self.maps[plane.fd] = mmap.mmap(plane.fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        self.camera.start(self._start_controls(fps))
        self.started = True
        for request in self.requests:
            self.camera.queue_request(request)

    def _start_controls(self, fps: int) -> dict[Any, Any]:
        # The frame rate, where the camera has the control (vimc has not: it runs free).
        limits = next((c for c in self.camera.controls if c.name == "FrameDurationLimits"), None)
        if limits is None:
            return {}
        period = 1_000_000 // fps
        return {limits: (period, period)}

    @property
    def event_fd(self) -> int:
        return int(self.manager.event_fd)

    def completed(self) -> tuple[list[Any], int]:
        """Requests that completed since the last call, and how many failed."""
        done, failed = [], 0
        for request in self.manager.get_ready_requests():
            if request.status == self.lc.Request.Status.Complete:
                done.append(request)
            else:
                failed += 1
                if self.started:
                    request.reuse()
                    self.camera.queue_request(request)
        return done, failed

    def data(self, request: Any) -> memoryview:
        """The frame in a completed request's buffer: its planes, as one view where they are
        consecutive in one buffer (how libcamera allocates them), else a copy."""
        buffer = request.buffers[self.stream]
        planes = list(buffer.planes)
        first = planes[0]
        view = memoryview(self.maps[first.fd])
        end = first.offset
        consecutive = True
        for plane in planes:
            consecutive = consecutive and plane.fd == first.fd and plane.offset == end
            end = plane.offset + plane.length
        if consecutive:
            return view[first.offset : end]
        return memoryview(b"".join(self.maps[p.fd][p.offset : p.offset + p.length] for p in planes))

    def requeue(self, request: Any) -> None:
        request.reuse()
        self.camera.queue_request(request)

    def close(self) -> None:
        """Stop, free, release, drop: each step even if one before it failed."""
        steps = []
        if self.started:
            steps.append(self.camera.stop)
        self.started = False
        steps.append(self._unmap)
        if self.allocator is not None:
            stream, allocator = self.stream, self.allocator
            steps.append(lambda: allocator.free(stream))
        if self.camera is not None:
            steps.append(self.camera.release)
        try:
            for step in steps:
                try:
                    step()
                except Exception as exc:
                    log.debug("libcamera: %s failed: %r", getattr(step, "__name__", step), exc)
        finally:
            self.requests.clear()
            self.allocator = self.camera = self.stream = None
            self.manager = None  # the last reference: libcamera's manager shuts down

    def _unmap(self) -> None:
        for m in self.maps.values():
            m.close()
        self.maps.clear()


def import_bindings() -> Any:
    try:
        import libcamera  # type: ignore[import-not-found]  # noqa: PLC0415 - optional, system-only
    except ImportError:
        raise CameraError(MISSING) from None
    return libcamera
