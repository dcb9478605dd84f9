"""Encoder: raw camera pixels -> JPEG with simplejpeg, straight from YUV planes.

Used by capture threads only when a camera gives raw frames (YUYV, NV12, YU12: any raw
source unpacks them with `unpack_planes`, which knows about padded rows) and by the
built-in pictures (test pattern, offline card); camera MJPEG never comes here (see mjpeg.py).
Pure functions, no I/O, safe to call from any thread: each call works on its own arrays.
Planes are 4:2:0 (chroma halved both ways): the smallest JPEGs for a slow link, and the
layout every decoder handles fastest.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import simplejpeg

Plane = npt.NDArray[np.uint8]
Planes = tuple[Plane, Plane, Plane]


def _range_luts() -> tuple[Plane, Plane]:
    # Cameras send limited-range YUV (Y 16..235, C 16..240) but JFIF is full range: encoded
    # as-is the picture looks washed out. A lookup table expands it for ~2 ms at 1080p.
    values = np.arange(256, dtype=np.float64)
    luma = np.clip(np.round((values - 16) * 255 / 219), 0, 255).astype(np.uint8)
    chroma = np.clip(np.round((values - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)
    return luma, chroma


LUMA_LUT, CHROMA_LUT = _range_luts()


def encode_planes(planes: Planes, quality: int) -> bytes:
    """Encode Y, U, V planes (uint8, C-contiguous rows) to a baseline JFIF JPEG."""
    y, u, v = planes
    return bytes(simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality, fastdct=True))


def expand_range(planes: Planes) -> Planes:
    """Map limited-range (16-235) YUV planes to full range (0-255)."""
    y, u, v = planes
    return LUMA_LUT[y], CHROMA_LUT[u], CHROMA_LUT[v]


RAW_FORMATS = ("YUYV", "NV12", "YU12")


def frame_size(fourcc: str, width: int, height: int, stride: int = 0) -> int:
    """Bytes a raw frame needs with rows of `stride` bytes (0: unpadded)."""
    if fourcc == "YUYV":
        row = width * 2
        stride = stride or row
        return stride * (height - 1) + row
    stride = stride or width
    # Y rows, then the chroma rows (NV12: one interleaved plane of `stride`-byte rows;
    # YU12: two planes of `stride / 2`-byte rows, as V4L2 defines single-plane YUV 4:2:0).
    return stride * height + stride * (height // 2)


def unpack_planes(
    data: bytes | memoryview, fourcc: str, width: int, height: int, stride: int = 0
) -> Planes | None:
    """Split one raw frame (YUYV, NV12 or YU12) with rows of `stride` bytes into planes.

    `stride` is the driver's bytes per line (0 or the row size: unpadded). Returns None for
    a buffer too short for the frame (a truncated capture); the planes may point into
    `data` (copy them before the buffer is reused).
    """
    if fourcc not in RAW_FORMATS:
        raise ValueError(f"not a raw format: {fourcc}")
    if len(data) < frame_size(fourcc, width, height, stride):
        return None
    if fourcc == "YUYV":
        row = width * 2
        if stride and stride != row:
            rows = np.frombuffer(data, np.uint8, count=stride * (height - 1) + row)
            padded = np.lib.stride_tricks.as_strided(rows, (height, row), (stride, 1))
            data = np.ascontiguousarray(padded).data
        return yuyv_to_planes(data, width, height)
    if not stride or stride == width:
        split = nv12_to_planes if fourcc == "NV12" else yu12_to_planes
        return split(data, width, height)
    buf = np.frombuffer(data, np.uint8, count=frame_size(fourcc, width, height, stride))
    y = np.ascontiguousarray(buf[: stride * height].reshape(height, stride)[:, :width])
    chroma = buf[stride * height :]
    if fourcc == "NV12":
        uv = chroma.reshape(height // 2, stride)[:, :width].reshape(height // 2, width // 2, 2)
        return y, np.ascontiguousarray(uv[:, :, 0]), np.ascontiguousarray(uv[:, :, 1])
    half = stride // 2
    q = half * (height // 2)
    u = chroma[:q].reshape(height // 2, half)[:, : width // 2]
    v = chroma[q : 2 * q].reshape(height // 2, half)[:, : width // 2]
    return y, np.ascontiguousarray(u), np.ascontiguousarray(v)


def yuyv_to_planes(data: bytes | memoryview, width: int, height: int) -> Planes:
    """Split packed YUYV 4:2:2 into 4:2:0 planes (chroma from every other row)."""
    packed = np.frombuffer(data, dtype=np.uint8, count=width * height * 2)
    quads = packed.reshape(height, width // 2, 4)
    y = packed[0::2].reshape(height, width)
    # simplejpeg needs column stride 1: the strided chroma views are copied once here.
    u = np.ascontiguousarray(quads[0::2, :, 1])
    v = np.ascontiguousarray(quads[0::2, :, 3])
    return np.ascontiguousarray(y), u, v


def nv12_to_planes(data: bytes | memoryview, width: int, height: int) -> Planes:
    """Split NV12 (Y plane, then interleaved UV at half size) into planes."""
    buf = np.frombuffer(data, dtype=np.uint8, count=width * height * 3 // 2)
    y = buf[: width * height].reshape(height, width)
    uv = buf[width * height :].reshape(height // 2, width // 2, 2)
    return y, np.ascontiguousarray(uv[:, :, 0]), np.ascontiguousarray(uv[:, :, 1])


def yu12_to_planes(data: bytes | memoryview, width: int, height: int) -> Planes:
    """Split YU12 / I420 (Y, then U, then V planes) into planes without copying."""
    buf = np.frombuffer(data, dtype=np.uint8, count=width * height * 3 // 2)
    q = width * height // 4
    y = buf[: width * height].reshape(height, width)
    u = buf[width * height : width * height + q].reshape(height // 2, width // 2)
    v = buf[width * height + q :].reshape(height // 2, width // 2)
    return y, u, v


def rgb_to_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """Full-range BT.601 (the JFIF colour space) for one RGB colour."""
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return tuple(int(min(255, max(0, round(c)))) for c in (y, u, v))  # type: ignore[return-value]
