"""V4L2 format negotiation: which pixel formats the daemon takes, and what open() agrees.

At each open the V4L2 source (v4l2.py), in its capture thread, asks `negotiate()` for a
format: the camera's MJPEG passed through untouched when it has one at the configured size
(encoder.py then only validates it), else YUYV / NV12 / YU12 for encoder.py to re-encode;
the `Negotiated` result decides how each frame is read and is shown in /api/state and the
startup line. `--list-cameras` (cameralist.py) uses the same fourcc names and the formats a
config may ask for. Failures the config can fix are `CameraError`s with a one-line reason;
the ioctls' OSErrors go back to v4l2.py, which words them (`reason_for`).
"""

from __future__ import annotations

import errno
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

with warnings.catch_warnings():
    # v4l2py 3.x warns on import that it is a shim over linuxpy: both are pinned on purpose.
    warnings.filterwarnings("ignore", "v4l2py is no longer being maintained", UserWarning)
    from v4l2py import device as v4l2

from pyimagestreamd import encoder
from pyimagestreamd.cameratypes import CameraError

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

log = logging.getLogger(__name__)

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


def fourcc(code: int) -> str:
    """The four-character name of a V4L2 pixel format code."""
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


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

    def state(self, read_in: str, yuv_range: str) -> dict[str, Any]:
        """The format's part of the source's /api/state; `read_in` says which thread reads."""
        info: dict[str, Any] = {
            "device": self.device,
            "card": self.card,
            "driver": self.driver,
            "format": self.fourcc,
            "mode": "passthrough" if self.is_passthrough else "encode",
            "read_in": read_in,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "input": self.input,
            "input_name": self.input_name,
        }
        if not self.is_passthrough:
            info["yuv_range"] = yuv_range
        return info

    def summary(self, source: str, quality: int, yuv_range: str) -> str:
        """The startup line's description of what was agreed for the configured `source`."""
        fps = f"{self.fps:g} fps" if self.fps else "driver's fps"
        how = (
            "MJPEG passthrough"
            if self.is_passthrough
            else f"re-encode to JPEG quality {quality} ({yuv_range} range)"
        )
        where = self.device if self.device == source else f"{source} -> {self.device}"
        return f"{where} ({self.card}): {self.fourcc} {self.width}x{self.height} at {fps}, {how}"


def select_input(dev: Any, index: int, source: str) -> None:
    """Switch the device to input `index`; CameraError naming the inputs it has otherwise."""
    inputs = dev.info.inputs
    if index >= len(inputs):
        names = ", ".join(f"{i.index}: {i.name}" for i in inputs) or "none"
        raise CameraError(f"{source}: no input {index} (inputs: {names})")
    dev.set_input(index)


def negotiate(dev: Any, cfg: CameraConfig, wanted: str, path: str, real: str) -> Negotiated:
    """Agree a format, size and rate with the driver of the open device `dev`.

    `wanted` is the config's `format:`; `path` the configured source (for messages),
    `real` the device node it resolved to. OSErrors of the ioctls propagate.
    """
    offered = [
        fourcc(int(f.pixel_format)) for f in dev.info.buffer_formats(v4l2.BufferType.VIDEO_CAPTURE)
    ]
    candidates = candidate_formats(offered, wanted)
    if not candidates:
        have = ", ".join(offered) or "none (a v4l2loopback node without a producer?)"
        raise CameraError(
            f"{path}: no usable format for format '{wanted}' (the camera offers: {have})"
        )
    # Prefer an exact size match in preference order; else the best format at the size
    # the driver proposes (TRY_FMT changes nothing on the device).
    chosen, size = candidates[0], None
    for code in candidates:
        tried = try_format(dev, code, cfg.width, cfg.height)
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


def try_format(dev: Any, code: str, width: int, height: int) -> tuple[int, int] | None:
    """The size the driver would give `code` at width x height (TRY_FMT), (-1, -1) if it
    would switch to another format, None if the driver has no TRY_FMT."""
    fmt = v4l2.raw.v4l2_format()
    fmt.type = v4l2.BufferType.VIDEO_CAPTURE
    fmt.fmt.pix.pixelformat = v4l2.raw.v4l2_fourcc(*code.ljust(4))
    fmt.fmt.pix.field = v4l2.Field.ANY
    fmt.fmt.pix.width, fmt.fmt.pix.height = width, height
    try:
        v4l2.try_raw_format(dev, fmt)
    except OSError as exc:
        if exc.errno == errno.ENOTTY:
            return None
        raise
    if fourcc(fmt.fmt.pix.pixelformat) != code:
        return (-1, -1)
    return (fmt.fmt.pix.width, fmt.fmt.pix.height)
