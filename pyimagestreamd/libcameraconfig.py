"""libcamera source config: the keys of `source: libcamera` and their schema (see sources.py).

Apart from the source (libcamerasource.py) so that validating a config imports neither
numpy nor the libcamera bindings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyimagestreamd.schema import Checker, Path, SourceOptions

LIBCAMERA = "libcamera"
KEYS = ("buffer_count", "frame_timeout")


@dataclass(frozen=True, slots=True)
class LibcameraOptions(SourceOptions):
    # Which camera: "" the first one, a number its index in libcamera's list, else its id.
    camera: str = ""
    # Buffers (and requests) in flight: enough that the camera never waits for the encoder.
    buffer_count: int = 4
    # No frame for this long: the camera is closed and opened again (with back-off).
    frame_timeout: float = 5.0


def claims(source: str) -> bool:
    return source == LIBCAMERA or source.startswith(LIBCAMERA + ":")


def parse_options(
    check: Checker, path: Path, source: str, cam: dict[str, Any]
) -> tuple[str, LibcameraOptions]:
    d = LibcameraOptions()
    _, _, camera = source.partition(":")
    return source, LibcameraOptions(
        camera=camera.strip(),
        buffer_count=check.integer(
            (*path, "buffer_count"), cam.get("buffer_count", d.buffer_count), 2, 16
        ),
        frame_timeout=check.number(
            (*path, "frame_timeout"), cam.get("frame_timeout", d.frame_timeout), 0.5, 600
        ),
    )
