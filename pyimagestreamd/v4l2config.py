"""The V4L2 source's config keys: its schema, beside the source (v4l2.py).

Kept apart from v4l2.py so that validating a file (`--check-config`, reload) does not load
linuxpy and numpy. sources.py registers it; the checker is schema.py's, so errors read like
every other key's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyimagestreamd.schema import Checker, Path, SourceOptions

FORMATS = ("auto", "mjpeg", "yuyv", "nv12", "yu12")
YUV_RANGES = ("limited", "full")
KEYS = ("format", "yuv_range", "input", "controls")


@dataclass(frozen=True, slots=True)
class V4L2Options(SourceOptions):
    format: str = "auto"
    yuv_range: str = "limited"
    input: int | None = None
    # (name, value) pairs in file order: a tuple keeps the dataclass hashable and frozen.
    controls: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "yuv_range": self.yuv_range,
            "input": self.input,
            "controls": dict(self.controls),
        }


def claims(source: str) -> bool:
    return source.startswith("/dev/")


def parse_options(
    check: Checker, path: Path, source: str, cam: dict[str, Any]
) -> tuple[str, V4L2Options]:
    d = V4L2Options()
    input_value = cam.get("input", d.input)
    controls_value = cam.get("controls", {}) or {}
    if not isinstance(controls_value, dict):
        raise check.fail(
            (*path, "controls"), controls_value, "a mapping of control names to integers"
        )
    controls = []
    for key, ctl in controls_value.items():
        cpath = (*path, "controls", str(key))
        check.string(
            cpath, key, "a control name", lambda s: re.fullmatch(r"[a-z0-9_]+", s) is not None
        )
        # Boolean controls (e.g. white_balance_automatic: true) are 0/1 for V4L2.
        number = int(ctl) if isinstance(ctl, bool) else ctl
        controls.append((key, check.integer(cpath, number, -(2**31), 2**31 - 1)))
    return source, V4L2Options(
        format=check.choice((*path, "format"), cam.get("format", d.format), FORMATS),
        yuv_range=check.choice((*path, "yuv_range"), cam.get("yuv_range", d.yuv_range), YUV_RANGES),
        input=None if input_value is None else check.integer((*path, "input"), input_value, 0, 255),
        controls=tuple(controls),
    )
