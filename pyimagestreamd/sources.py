"""Sources: the registry of capture source types, explicit in one table.

A camera's `source:` value picks its type (`testpattern`, a `/dev/...` V4L2 node, `exec`
with a command, an `http(s)://` URL, `libcamera`). Each type brings the names of its own
config keys, the schema function that validates them (living beside the source:
`v4l2config.py`, `pipelineconfig.py`, `netcamconfig.py`, `libcameraconfig.py`) and a factory for its
`CaptureSource`. config.py asks this table which type a camera is and lets the type
validate its keys; the daemon is handed a `SourceFactory` (by default `create_source`
below; tests pass their own fakes) and never imports a source module itself.

The V4L2, libcamera and test-pattern classes are imported when a camera of that kind is
created: they pull in numpy and linuxpy, which `--check-config` does not need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyimagestreamd import (
    libcameraconfig,
    netcam,
    netcamconfig,
    pipeline,
    pipelineconfig,
    v4l2config,
)
from pyimagestreamd.schema import Checker, Path, SourceOptions

if TYPE_CHECKING:
    from pyimagestreamd.camera import CaptureSource
    from pyimagestreamd.config import CameraConfig

TESTPATTERN = "testpattern"

SourceFactory = Callable[["CameraConfig"], "CaptureSource"]
# Validates a camera's source-specific keys: (checker, key path of the camera, the
# `source:` value, the camera's mapping) -> (the source to keep, the type's options).
Schema = Callable[[Checker, Path, str, dict[str, Any]], tuple[str, SourceOptions]]


@dataclass(frozen=True, slots=True)
class SourceType:
    kind: str
    label: str  # for messages: "a V4L2 source"
    claims: Callable[[str], bool]  # does this `source:` value select the type?
    keys: tuple[str, ...]
    parse: Schema
    create: SourceFactory


def _no_options(
    check: Checker, path: Path, source: str, cam: dict[str, Any]
) -> tuple[str, SourceOptions]:
    return source, SourceOptions()


def _testpattern(config: CameraConfig) -> CaptureSource:
    from pyimagestreamd.testpattern import TestPatternSource  # noqa: PLC0415 - numpy on use

    return TestPatternSource(config)


def _v4l2(config: CameraConfig) -> CaptureSource:
    from pyimagestreamd.v4l2 import V4L2Source  # noqa: PLC0415 - linuxpy on use

    return V4L2Source(config)


def _libcamera(config: CameraConfig) -> CaptureSource:
    from pyimagestreamd.libcamerasource import LibcameraSource  # noqa: PLC0415 - numpy on use

    return LibcameraSource(config)


SOURCE_TYPES = (
    SourceType(
        TESTPATTERN, "testpattern", lambda s: s == TESTPATTERN, (), _no_options, _testpattern
    ),
    SourceType("v4l2", "V4L2", v4l2config.claims, v4l2config.KEYS, v4l2config.parse_options, _v4l2),
    SourceType(
        "exec",
        "exec",
        pipelineconfig.claims,
        pipelineconfig.KEYS,
        pipelineconfig.parse_options,
        pipeline.PipelineSource,
    ),
    SourceType(
        "http",
        "http",
        netcamconfig.claims,
        netcamconfig.KEYS,
        netcamconfig.parse_options,
        netcam.NetworkSource,
    ),
    SourceType(
        libcameraconfig.LIBCAMERA,
        "libcamera",
        libcameraconfig.claims,
        libcameraconfig.KEYS,
        libcameraconfig.parse_options,
        _libcamera,
    ),
)
EXPECTED_SOURCE = (
    f"'{TESTPATTERN}', a V4L2 device path such as /dev/video0, '{pipelineconfig.EXEC}' (with a"
    " command), an http:// or https:// URL or 'libcamera' (optionally 'libcamera:<camera id or"
    " index>')"
)


def source_type(source: str) -> SourceType | None:
    """The type a `source:` value selects, or None if no type claims it."""
    return next((t for t in SOURCE_TYPES if t.claims(source)), None)


def key_owner(key: object) -> SourceType | None:
    """The source type a camera key belongs to (for a hint when it is used elsewhere)."""
    return next((t for t in SOURCE_TYPES if key in t.keys), None)


def create_source(config: CameraConfig) -> CaptureSource:
    """The capture source for a camera's configured `source` (the daemon's default factory)."""
    found = source_type(config.source)
    if found is None:
        raise ValueError(f"camera {config.name}: no source type for {config.source!r}")
    return found.create(config)
