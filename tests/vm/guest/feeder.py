"""A v4l2loopback producer for the in-guest tests: writes known frames at a steady rate.

    python feeder.py DEVICE yuyv-bars [FPS]    1920x1080 YUYV colour bars (limited range)
    python feeder.py DEVICE hostile      640x480 MJPEG: good, zero-padded, Huffman-less,
                                         truncated and garbage frames in a fixed cycle

Runs until killed. A separate process, like a real camera is outside the daemon. Frames go
in with write(2): v4l2loopback then hands consumers exactly the bytes of each write.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

import numpy as np
import simplejpeg

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from v4l2py import device as v4l2

FPS = 30
# 75% colour bars, as RGB: what the tests expect to decode from the daemon's JPEGs.
BARS_RGB = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
            (191, 0, 191), (191, 0, 0), (0, 0, 191), (16, 16, 16)]  # fmt: skip
# Hostile cycle: what each of the ten frames of a cycle is.
HOSTILE_CYCLE = ["good", "good", "padded", "padded", "nodht", "nodht",
                 "truncated", "truncated_padded", "garbage", "zeros"]  # fmt: skip


def limited_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """BT.601 limited range (what cameras send) for one RGB colour."""
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def yuyv_bars(width: int, height: int) -> bytes:
    frame = np.empty((height, width // 2, 4), np.uint8)
    for i, rgb in enumerate(BARS_RGB):
        x0, x1 = width // 2 * i // len(BARS_RGB), width // 2 * (i + 1) // len(BARS_RGB)
        y, u, v = limited_yuv(*rgb)
        frame[:, x0:x1] = (y, u, y, v)  # Y0 U Y1 V
    return frame.tobytes()


def good_jpegs(count: int, width: int = 640, height: int = 480) -> list[bytes]:
    """Distinct small JPEGs: colour bars with a block that moves from frame to frame."""
    out = []
    base = np.zeros((height, width, 3), np.uint8)
    for i, rgb in enumerate(BARS_RGB):
        base[:, width * i // len(BARS_RGB) : width * (i + 1) // len(BARS_RGB)] = rgb
    for n in range(count):
        image = base.copy()
        x = n * width // count
        image[height // 3 : height // 3 + 40, x : x + 40] = 255
        out.append(bytes(simplejpeg.encode_jpeg(image, quality=80, colorspace="RGB")))
    return out


def without_dht(jpeg: bytes) -> bytes:
    out, pos = bytearray(jpeg[:2]), 2
    while True:
        marker = jpeg[pos + 1]
        length = jpeg[pos + 2] << 8 | jpeg[pos + 3]
        if marker == 0xDA:
            out += jpeg[pos:]
            return bytes(out)
        if marker != 0xC4:
            out += jpeg[pos : pos + 2 + length]
        pos += 2 + length


def hostile_frames() -> list[bytes]:
    goods = good_jpegs(len(HOSTILE_CYCLE))
    rng = np.random.default_rng(5)
    frames = []
    for kind, good in zip(HOSTILE_CYCLE, goods, strict=True):
        if kind == "good":
            frames.append(good)
        elif kind == "padded":
            frames.append(good + bytes(40_000))
        elif kind == "nodht":
            frames.append(without_dht(good))
        elif kind == "truncated":
            frames.append(good[: len(good) * 6 // 10])
        elif kind == "truncated_padded":
            frames.append(good[: len(good) // 3] + bytes(10_000))
        elif kind == "garbage":
            frames.append(rng.integers(0, 256, len(good), dtype=np.uint8).tobytes())
        else:
            frames.append(bytes(len(good)))
    return frames


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    fps = float(sys.argv[3]) if len(sys.argv) > 3 else FPS
    if mode == "yuyv-bars":
        width, height, pixfmt = 1920, 1080, "YUYV"
        frames = [yuyv_bars(width, height)]
    elif mode == "hostile":
        width, height, pixfmt = 640, 480, "MJPG"
        frames = hostile_frames()
    else:
        sys.exit(f"unknown mode {mode}")
    dev = v4l2.Device(path, blocking=True)
    dev.open()
    dev.set_format(v4l2.BufferType.VIDEO_OUTPUT, width, height, pixfmt)
    with contextlib.suppress(OSError):  # consumers then report the driver's default rate
        dev.set_fps(v4l2.BufferType.VIDEO_OUTPUT, fps)
    fd = dev.fileno()
    next_at = time.monotonic()
    n = 0
    while True:
        os.write(fd, frames[n % len(frames)])
        n += 1
        next_at += 1 / fps
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()
