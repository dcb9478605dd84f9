"""libcamera cameras for `--list-cameras`: parsed from the output of libcamera's own tools.

On Raspberry Pi OS the Camera Module sits behind libcamera, not V4L2 (its /dev/video* nodes
give raw Bayer). `rpicam-hello --list-cameras` (`libcamera-hello` on older releases) or
libcamera's `cam -l` says which sensors there are; each becomes a suggested `source: exec`
entry running rpicam-vid. Only runs a tool that is installed, with a time bound; the
parsers are pure functions (unit-tested on text in the tools' documented formats).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

TOOL_TIMEOUT = 10.0

# rpicam-hello: "0 : imx708 [4608x2592 10-bit RGGB] (/base/.../imx708@1a)"; older releases
# print only "[4608x2592]". Mode lines follow, starting with "Modes:" or indented.
_RPICAM_CAMERA = re.compile(r"^\s*(\d+)\s*:\s*(\S+)\s*\[(\d+x\d+)[^\]]*\]\s*\((.*)\)\s*$")
_RPICAM_MODE = re.compile(r"(\d+x\d+)(?:\s*\[([\d.]+)\s*fps)?")
# "- (1000, 752)/1280x960 crop": the sensor area a mode reads, not a mode of its own.
_CROP = re.compile(r"-\s*\([^)]*\)/\d+x\d+\s*crop")
# cam -l: "1: 'imx219' (/base/...)" or "1: Internal front camera (/base/...)".
_CAM_CAMERA = re.compile(r"^\s*(\d+):\s*(.+?)\s*\((.+)\)\s*$")


@dataclass(slots=True)
class LibCamera:
    index: int  # as the tool numbers it: rpicam-apps' --camera N (0-based), cam's 1-based
    name: str  # the sensor model (imx708) or cam's description
    camera_id: str
    tool: str
    size: str = ""
    modes: list[str] = field(default_factory=list)  # "1920x1080@47.57"


def parse_rpicam_list(text: str) -> list[LibCamera]:
    """Cameras from `rpicam-hello --list-cameras` output (log lines around it are ignored)."""
    cameras: list[LibCamera] = []
    in_list = False
    for line in text.splitlines():
        if line.strip().startswith("Available cameras"):
            in_list = True
            continue
        if not in_list:
            continue
        if match := _RPICAM_CAMERA.match(line):
            index, name, size, camera_id = match.groups()
            cameras.append(LibCamera(int(index), name, camera_id, "rpicam-hello", size))
        elif cameras and (line.startswith((" ", "\t")) or "Modes:" in line):
            for size, fps in _RPICAM_MODE.findall(_CROP.sub("", line)):
                mode = f"{size}@{fps}" if fps else size
                if mode not in cameras[-1].modes:
                    cameras[-1].modes.append(mode)
    return cameras


def parse_cam_list(text: str) -> list[LibCamera]:
    """Cameras from libcamera's `cam -l` output."""
    cameras = []
    in_list = False
    for line in text.splitlines():
        if line.strip().startswith("Available cameras"):
            in_list = True
        elif in_list and (match := _CAM_CAMERA.match(line)):
            index, name, camera_id = match.groups()
            cameras.append(LibCamera(int(index), name.strip("'"), camera_id, "cam"))
    return cameras


Runner = Callable[[list[str]], str | None]


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # rpicam-apps print the list on stdout and libcamera's log on stderr.
    return done.stdout + "\n" + done.stderr


def list_libcameras(run: Runner = _run) -> tuple[str, list[LibCamera]]:
    """(the tool that answered or "", its cameras) from the first libcamera tool installed."""
    for argv, parse in (
        (["rpicam-hello", "--list-cameras"], parse_rpicam_list),
        (["libcamera-hello", "--list-cameras"], parse_rpicam_list),
        (["cam", "-l"], parse_cam_list),
    ):
        text = run(argv)
        if text is not None:
            return argv[0], parse(text)
    return "", []


def format_libcamera_list(tool: str, cameras: list[LibCamera]) -> str:
    """The --list-cameras section for libcamera: a ready `source: exec` entry per camera."""
    if not tool:
        return "libcamera: no rpicam-hello, libcamera-hello or cam installed (not listed)\n"
    if not cameras:
        return f"libcamera ({tool}): no cameras\n"
    lines = []
    for cam in cameras:
        lines.append(f"libcamera camera {cam.index}: {cam.name} {cam.size} ({cam.camera_id})")
        if cam.modes:
            lines.append(f"  modes: {' '.join(cam.modes)}")
        # rpicam-apps number cameras from 0; cam numbers them from 1.
        number = cam.index if cam.tool != "cam" else cam.index - 1
        lines.append("  source: exec")
        lines.append(
            f"  command: rpicam-vid -t 0 -n --camera {number} --codec mjpeg"
            " --width 1920 --height 1080 --framerate 30 -o -"
        )
    return "\n".join(lines) + "\n"
