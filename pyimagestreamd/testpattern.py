"""The built-in test-pattern camera: a moving picture for machines without a camera.

A `CaptureSource` like the V4L2 camera (same thread, same on-demand life cycle, same
counters), so everything downstream is exercised exactly as with real hardware. Each frame
is drawn straight into YUV planes — colour bars, a grey ramp, a box that moves every frame,
the frame number and the time — and encoded with simplejpeg without an RGB detour.

It has controls like a webcam's, so that camera settings (controls.py) work and can be
tested without hardware: `brightness` (0..255, 128 leaves the picture as drawn) shifts the
luma of every pixel, `horizontal_flip` mirrors the picture.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pyimagestreamd import encoder, font
from pyimagestreamd.camera import CaptureSource
from pyimagestreamd.config import CameraConfig
from pyimagestreamd.controls import Applied, ControlError, check_value
from pyimagestreamd.frame import Frame

# 75% colour bars: white, yellow, cyan, green, magenta, red, blue.
BARS_RGB = (
    (191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
    (191, 0, 191), (191, 0, 0), (0, 0, 191),
)  # fmt: skip
# The controls, described as /api/state describes a V4L2 camera's (v4l2controls.py).
CONTROLS: dict[str, dict[str, Any]] = {
    "brightness": {"type": "int", "min": 0, "max": 255, "step": 1, "default": 128},
    "horizontal_flip": {"type": "bool", "min": 0, "max": 1, "step": 1, "default": 0},
}


class TestPattern:
    """Draws pattern frames of one size; reuses its buffers, so one instance per thread."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, width: int, height: int, label: str) -> None:
        self.width, self.height, self.label = width, height, label
        self.base = self._draw_base()
        self.work = tuple(p.copy() for p in self.base)
        self.scale = max(1, height // 160)
        self.box = max(8, height // 8) & ~1
        self.brightness = 128
        self.horizontal_flip = False
        self._lut: encoder.Plane = np.arange(256, dtype=np.uint8)
        self._lut_for = 128

    def _draw_base(self) -> encoder.Planes:
        w, h = self.width, self.height
        y = np.empty((h, w), np.uint8)
        u = np.empty((h // 2, w // 2), np.uint8)
        v = np.empty((h // 2, w // 2), np.uint8)
        bars_h = (h * 2 // 3) & ~1
        for i, rgb in enumerate(BARS_RGB):
            x0 = (w * i // len(BARS_RGB)) & ~1
            x1 = (w * (i + 1) // len(BARS_RGB)) & ~1
            cy, cu, cv = encoder.rgb_to_yuv(*rgb)
            y[:bars_h, x0:x1] = cy
            u[: bars_h // 2, x0 // 2 : x1 // 2] = cu
            v[: bars_h // 2, x0 // 2 : x1 // 2] = cv
        ramp = np.linspace(16, 235, w).astype(np.uint8)
        y[bars_h:] = ramp
        u[bars_h // 2 :] = 128
        v[bars_h // 2 :] = 128
        return y, u, v

    def draw(self, number: int, wall_time: float) -> encoder.Planes:
        """The planes of frame `number`; valid until the next call."""
        y, u, v = self.work
        np.copyto(y, self.base[0])
        np.copyto(u, self.base[1])
        np.copyto(v, self.base[2])
        # A box sweeping left to right, one step per frame: motion is visible at any fps.
        span = max(2, self.width - self.box)
        x = (number * max(2, self.width // 90)) % span & ~1
        top = (self.height * 2 // 3 - self.box) // 2 & ~1
        y[top : top + self.box, x : x + self.box] = 235
        u[top // 2 : (top + self.box) // 2, x // 2 : (x + self.box) // 2] = 128
        v[top // 2 : (top + self.box) // 2, x // 2 : (x + self.box) // 2] = 128
        if self.horizontal_flip:  # the scene is mirrored, the caption stays readable
            for plane in (y, u, v):
                plane[:] = plane[:, ::-1]
        stamp = time.strftime("%H:%M:%S", time.localtime(wall_time))
        millis = int(wall_time * 1000) % 1000
        text = f"{self.label} #{number} {stamp}.{millis:03d} {self.width}x{self.height}"
        tw, th = font.text_size(text, self.scale)
        pad = 2 * self.scale
        band = slice(self.height - th - 3 * pad, self.height - pad)
        y[band, pad : pad + tw + 2 * pad] = 16
        font.draw_text(y, text, 2 * pad, self.height - th - 2 * pad, scale=self.scale, value=235)
        if self.brightness != 128:
            if self._lut_for != self.brightness:
                shifted = np.arange(256, dtype=np.int16) + (self.brightness - 128)
                self._lut = np.clip(shifted, 0, 255).astype(np.uint8)
                self._lut_for = self.brightness
            np.take(self._lut, y, out=y)
        return y, u, v


class TestPatternSource(CaptureSource):
    """A camera that draws its frames; paced to the configured fps."""

    __test__ = False

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        self._pattern: TestPattern | None = None
        self._number = 0
        self._next_at = 0.0
        # Written by the capture thread only; read by /api/state (whole-value replacement).
        self._values = {name: int(spec["default"]) for name, spec in CONTROLS.items()}

    def open(self) -> None:
        if self._pattern is None:
            cfg = self.config
            self._pattern = TestPattern(cfg.width, cfg.height, cfg.name)
            self.set_controls(self._values)
        self._next_at = time.monotonic()

    def read(self, timeout: float) -> Frame | None:
        assert self._pattern is not None
        now = time.monotonic()
        wait = self._next_at - now
        if wait > timeout:
            time.sleep(timeout)
            return None
        if wait > 0:
            time.sleep(wait)
        interval = 1.0 / self.config.fps
        # Keep a steady cadence, but after a stall (a loaded machine) don't burst to catch up.
        self._next_at = max(self._next_at + interval, time.monotonic() - interval)
        self._number += 1
        captured_at, wall = time.monotonic(), time.time()
        planes = self._pattern.draw(self._number, wall)
        jpeg = encoder.encode_planes(planes, self.config.quality)
        return Frame(jpeg, self.config.width, self.config.height, captured_at, wall)

    def close(self) -> None:
        pass  # nothing to release: the pattern buffers are reused at the next open

    def control_specs(self) -> dict[str, dict[str, Any]]:
        values = self._values
        return {name: {**spec, "value": values[name]} for name, spec in CONTROLS.items()}

    def set_controls(self, values: dict[str, int]) -> Applied:
        current, errors = dict(self._values), {}
        for name, value in values.items():
            try:
                spec = CONTROLS.get(name)
                if spec is None:
                    raise ControlError(f"{name}: no such control")
                current[name] = check_value(name, spec, value)
            except ControlError as exc:
                errors[name] = str(exc)
        self._values = current
        if self._pattern is not None:
            self._pattern.brightness = current["brightness"]
            self._pattern.horizontal_flip = bool(current["horizontal_flip"])
        return Applied({k: current[k] for k in values if k not in errors}, errors)

    def describe(self) -> dict[str, Any]:
        return {
            "source": "testpattern",
            "format": "testpattern",
            "mode": "encode",
            "width": self.config.width,
            "height": self.config.height,
            "fps": self.config.fps,
            "controls": self.control_specs(),
        }

    def format_summary(self) -> str:
        cfg = self.config
        return f"test pattern {cfg.width}x{cfg.height} at {cfg.fps} fps, JPEG quality {cfg.quality}"
