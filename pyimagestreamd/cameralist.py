"""Camera listing for `pyimagestreamd --list-cameras`: what a user needs to fill in the YAML.

Not part of the streaming data flow: a one-shot look at the machine. V4L2 nodes are opened
with v4l2py and described in the V4L2 source's terms (v4l2format.py's formats, v4l2.py's
reasons; capture devices listed with formats, sizes and controls); cameras behind
libcamera (the Raspberry Pi Camera Module) are listed from the output of libcamera's own
tools when one is installed (libcameras.py).
"""

from __future__ import annotations

import glob
import os
import stat
import warnings
from typing import Any

with warnings.catch_warnings():
    # As in v4l2.py: v4l2py 3.x warns on import that it is a shim over linuxpy.
    warnings.filterwarnings("ignore", "v4l2py is no longer being maintained", UserWarning)
    from v4l2py import device as v4l2

from pyimagestreamd.v4l2 import reason_for
from pyimagestreamd.v4l2controls import control_key, control_state
from pyimagestreamd.v4l2format import CONFIG_FORMATS, fourcc


def _stable_names() -> dict[str, list[str]]:
    """/dev/videoN -> its udev symlinks, by-id first (stable across re-plugs), then by-path."""
    names: dict[str, list[str]] = {}
    for pattern in ("/dev/v4l/by-id/*", "/dev/v4l/by-path/*"):
        for link in sorted(glob.glob(pattern)):
            names.setdefault(os.path.realpath(link), []).append(link)
    return names


def _video_nodes() -> list[str]:
    def number(path: str) -> int:
        digits = path[len("/dev/video") :]
        return int(digits) if digits.isdigit() else 1 << 30

    return sorted(glob.glob("/dev/video*"), key=number)


def _fps_text(frame_type: Any) -> str:
    if frame_type.max_fps == 0:
        return "?"
    if frame_type.min_fps == frame_type.max_fps:
        return f"{float(frame_type.max_fps):g}"
    return f"{float(frame_type.min_fps):g}-{float(frame_type.max_fps):g}"


def _describe_node(path: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"device": path}
    try:
        st = os.stat(path)
        if not stat.S_ISCHR(st.st_mode):
            entry["error"] = "not a character device"
            return entry
        with v4l2.Device(path) as dev:
            info = dev.info
            entry["card"] = info.card
            entry["driver"] = info.driver
            entry["bus"] = info.bus_info
            caps = info.device_capabilities
            entry["capture"] = v4l2.Capability.VIDEO_CAPTURE in caps
            if not entry["capture"]:
                return entry
            try:
                entry["inputs"] = [f"{i.index}: {i.name}" for i in info.inputs]
            except OSError:
                entry["inputs"] = []
            formats = []
            for fmt in info.buffer_formats(v4l2.BufferType.VIDEO_CAPTURE):
                code = fourcc(int(fmt.pixel_format))
                sizes = []
                try:
                    frame_sizes = info.format_frame_sizes(fmt.pixel_format)
                except OSError:
                    frame_sizes = []
                for size in frame_sizes:
                    if size.type == v4l2.FrameSizeType.DISCRETE:
                        w, h = size.info.width, size.info.height
                        try:
                            rates = [
                                _fps_text(t) for t in info.fps_intervals(fmt.pixel_format, w, h)
                            ]
                        except OSError:
                            rates = []
                        sizes.append(f"{w}x{h}@{'/'.join(rates) or '?'}")
                    else:
                        s = size.info
                        sizes.append(f"{s.min_width}x{s.min_height}..{s.max_width}x{s.max_height}")
                formats.append({"format": code, "description": fmt.description, "sizes": sizes})
            entry["formats"] = formats
            controls = {}
            for ctrl in dev.controls.values():
                if hasattr(ctrl, "default") and not isinstance(ctrl, v4l2.CompoundControl):
                    controls[control_key(ctrl.name)] = control_state(ctrl)
            entry["controls"] = controls
    except PermissionError:
        entry["error"] = "permission denied: add the user to the 'video' group to use it"
    except OSError as exc:
        entry["error"] = reason_for(exc, path)
    return entry


def list_cameras() -> list[dict[str, Any]]:
    """Every /dev/video* node: capture devices in full, others and unreadable ones flagged."""
    stable = _stable_names()
    out = []
    for path in _video_nodes():
        entry = _describe_node(path)
        entry["stable"] = stable.get(path, [])
        out.append(entry)
    return out


def format_camera_list(cameras: list[dict[str, Any]]) -> str:
    """Human-readable --list-cameras output: what a user needs to fill in the YAML."""
    if not cameras:
        return "no V4L2 devices (/dev/video*) found\n"
    lines = []
    for cam in cameras:
        stable = cam["stable"]
        source = stable[0] if stable else cam["device"]
        head = f"{cam['device']}"
        if "error" in cam:
            lines.append(f"{head}: {cam['error']}")
            continue
        if not cam.get("capture"):
            lines.append(
                f"{head}: {cam.get('card', '?')} ({cam.get('driver', '?')}): not a capture device"
            )
            continue
        lines.append(f"{head}: {cam['card']} ({cam['driver']}, {cam['bus']})")
        lines.append(f"  source: {source}" + ("" if stable else "   (no stable /dev/v4l name)"))
        for other in stable[1:]:
            lines.append(f"  also:   {other}")
        if cam.get("inputs"):
            lines.append(f"  inputs: {', '.join(cam['inputs'])}")
        if not cam.get("formats"):
            lines.append("  formats: none offered now")
        for fmt in cam.get("formats", []):
            usable = "" if fmt["format"] in CONFIG_FORMATS["auto"] else "  (not supported)"
            lines.append(f"  {fmt['format']:<4} {fmt['description']}{usable}")
            if fmt["sizes"]:
                lines.append(f"       {' '.join(fmt['sizes'])}")
        if cam.get("controls"):
            lines.append("  controls (config name = value [min..max]):")
            for key, ctl in cam["controls"].items():
                value = ctl.get("value", "?")
                lines.append(f"    {key} = {value} [{ctl['min']}..{ctl['max']}]")
    return "\n".join(lines) + "\n"
