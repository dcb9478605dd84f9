"""Saved camera settings: the control values "save" keeps, restored at the next start.

One JSON state file beside the sessions and share links (statefile.py), never the YAML,
which stays the user's: `{"cameras": {"fish": {"brightness": 140}}}`. The settings API
(controlapi.py) writes one camera's values at a time; the daemon reads the file once at
start and hands each camera's values to its `ControlRequests` (controls.py), applied at the
camera's open after the configured ones. A file that is too big or malformed is reported in
one line and ignored as a whole: it was not written by us. Blocking file I/O: call it off
the event loop, or at start.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from pyimagestreamd.controls import MAX_CONTROLS
from pyimagestreamd.statefile import StateError, read_json, write_json

FILE_NAME = "camera-controls.json"
# A few dozen controls per camera and a handful of cameras fit in a few kB.
MAX_BYTES = 64 * 1024
MAX_CAMERAS = 64
_NAME = re.compile(r"[a-z0-9_]{1,64}")

log = logging.getLogger(__name__)


def restore(path: Path) -> dict[str, dict[str, int]]:
    """`load`, for the daemon's start: a bad file is logged in one line and ignored."""
    try:
        saved = load(path)
    except StateError as exc:
        log.error("saved camera settings ignored: %s", exc)
        return {}
    for camera, values in saved.items():
        log.info("camera %s: restoring saved controls %s", camera, values)
    return saved


def load(path: Path) -> dict[str, dict[str, int]]:
    """Saved values by camera and control; {} without a file; StateError if it is bad."""
    doc = read_json(path, MAX_BYTES)
    cameras = doc.get("cameras", {})
    if not isinstance(cameras, dict) or len(cameras) > MAX_CAMERAS:
        raise StateError(f"{path}: 'cameras' must map at most {MAX_CAMERAS} camera names")
    out = {}
    for camera, values in cameras.items():
        out[str(camera)] = _values(path, str(camera), values)
    return out


def _values(path: Path, camera: str, values: Any) -> dict[str, int]:
    if not isinstance(values, dict) or len(values) > MAX_CONTROLS:
        raise StateError(
            f"{path}: camera {camera[:64]!r}: expected at most {MAX_CONTROLS} controls"
        )
    for name, value in values.items():
        if not _NAME.fullmatch(name) or isinstance(value, bool) or not isinstance(value, int):
            raise StateError(f"{path}: camera {camera[:64]!r}: bad entry {str(name)[:64]!r}")
        if not -(2**63) <= value < 2**63:
            raise StateError(f"{path}: camera {camera[:64]!r}: {name} out of range")
    return dict(values)


def save(path: Path, camera: str, values: dict[str, int]) -> None:
    """Replace one camera's saved values (none: forget the camera), keeping the others'.

    A bad file is replaced (the caller has logged why it was ignored at start)."""
    try:
        saved = load(path)
    except StateError:
        saved = {}
    if values:
        saved[camera] = dict(values)
    else:
        saved.pop(camera, None)
    write_json(path, {"cameras": saved})
