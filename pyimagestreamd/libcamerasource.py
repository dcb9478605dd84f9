"""Native libcamera source: a libcamera camera through its Python bindings (`source: libcamera`).

`LibcameraSource` is the `CaptureSource` (camera.py) for a camera that only libcamera drives
(the Raspberry Pi Camera Module on Raspberry Pi OS, the kernel's vimc test camera). Its hooks
run in the camera's one capture thread: `open()` starts a `Session` (libcamerasession.py),
which acquires the camera, configures one stream in the best format it offers
(`choose_format`: YUV420 or NV12 encoded from the planes, else 24-bit RGB), allocates its
buffers, maps them and queues one request per buffer; `read()`
waits on the camera manager's event fd with a bound, encodes the newest completed request
with simplejpeg (stride-aware unpacking in encoder.py) and queues it again; `close()` stops
and releases the camera and drops the manager, so another process can open it. camera.py
does the rest as for every source: opened by the first viewer, closed after `stop_delay`,
reopened with back-off, offline after `frame_timeout` without a frame.

The bindings (`python3-libcamera`, a compiled module for one system Python) have no types
and may be missing: they are imported in `open()`, so the daemon runs without them and a
camera configured with this source goes offline saying how to get them. Every use of them
is in libcamerasession.py; this module turns what a session hands back into Frames (`encode`).
"""

from __future__ import annotations

import logging
import select
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import simplejpeg

from pyimagestreamd import encoder
from pyimagestreamd.camera import CameraError, CaptureSource
from pyimagestreamd.frame import Frame
from pyimagestreamd.libcameraconfig import LibcameraOptions
from pyimagestreamd.libcamerasession import (
    RGB_FORMATS,
    YUV_FORMATS,
    Session,
    import_bindings,
    reason,
)
from pyimagestreamd.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

log = logging.getLogger(__name__)


def encode(
    data: memoryview, fmt: str, size: tuple[int, int], stride: int, quality: int
) -> bytes | None:
    """One frame in a libcamera format to JPEG; None if the buffer is too short."""
    width, height = size
    if fmt in YUV_FORMATS:
        planes = encoder.unpack_planes(data, YUV_FORMATS[fmt], width, height, stride)
        return None if planes is None else encoder.encode_planes(planes, quality)
    row = width * 3
    stride = stride or row
    if len(data) < stride * (height - 1) + row:
        return None
    rows = np.frombuffer(data, np.uint8, count=stride * (height - 1) + row)
    image = np.lib.stride_tricks.as_strided(rows, (height, width, 3), (stride, 3, 1))
    return bytes(
        simplejpeg.encode_jpeg(
            np.ascontiguousarray(image),
            quality=quality,
            colorspace=RGB_FORMATS[fmt],
            colorsubsampling="420",
            fastdct=True,
        )
    )


class LibcameraSource(CaptureSource):
    """One libcamera camera; the hooks run only in the capture thread."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        opts = config.options
        self.options = opts if isinstance(opts, LibcameraOptions) else LibcameraOptions()
        self.frame_timeout = self.options.frame_timeout
        self._session: Session | None = None
        self._log = RateLimitedLog(log)
        self.counters["requests_failed"] = 0
        self.counters["frames_dropped_short"] = 0

    def open(self) -> None:
        lc = import_bindings()
        c = self.config
        try:
            # Kept before it starts: a session that fails half-way is undone by close().
            self._session = session = Session(lc)
            session.start(self.options.camera, c.width, c.height, c.fps, self.options.buffer_count)
        except CameraError:
            raise
        except Exception as exc:  # the bindings raise RuntimeError/OSError with errno text
            raise CameraError(reason("cannot start the camera", exc)) from None
        self.last_size = (session.width, session.height)

    def read(self, timeout: float) -> Frame | None:
        session = self._session
        assert session is not None
        ready, _, _ = select.select((session.event_fd,), (), (), timeout)
        if not ready:
            return None
        done, failed = session.completed()
        if failed:
            self.counters["requests_failed"] += failed
            self._log.warning(
                "failed", "camera %s: %d libcamera requests failed", self.config.name, failed
            )
        if not done:
            return None
        # Older completions are dropped: the newest wins, as in the hub's latest-frame slot.
        self.counters["frames_dropped"] += len(done) - 1
        for request in done[:-1]:
            session.requeue(request)
        newest = done[-1]
        captured_at, wall = time.monotonic(), time.time()
        try:
            jpeg = encode(
                session.data(newest), session.format, (session.width, session.height),
                session.stride, self.config.quality,
            )  # fmt: skip
        finally:
            session.requeue(newest)
        if jpeg is None:
            self.counters["frames_dropped_short"] += 1
            self._log.warning("short", "camera %s: a frame buffer was short", self.config.name)
            return None
        return Frame(jpeg, session.width, session.height, captured_at, wall)

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def describe(self) -> dict[str, Any]:
        session = self._session
        return {
            "source": self.config.source,
            "mode": "encode",
            "camera": session.camera_id if session else None,
            "format": session.format if session else None,
        }

    def format_summary(self) -> str:
        session = self._session
        if session is None:
            return super().format_summary()
        return (
            f"libcamera {session.camera_id}: {session.format} {session.width}x{session.height}"
            f" (stride {session.stride}), encode to JPEG quality {self.config.quality}"
        )
