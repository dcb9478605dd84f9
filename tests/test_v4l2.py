"""Unit tests for the I/O-free parts of the V4L2 source (the device paths run in tests/vm)."""

from __future__ import annotations

import errno

from pyimagestreamd.cameralist import format_camera_list
from pyimagestreamd.v4l2 import reason_for
from pyimagestreamd.v4l2controls import control_key
from pyimagestreamd.v4l2format import candidate_formats, fourcc


def test_fourcc_names_pixel_format_codes() -> None:
    """Codes are decoded little-endian, as V4L2 packs them."""
    assert fourcc(0x47504A4D) == "MJPG"
    assert fourcc(0x56595559) == "YUYV"


def test_auto_prefers_mjpeg_then_raw_in_order() -> None:
    """'auto' passes camera MJPEG through when offered, else takes the cheapest raw format."""
    assert candidate_formats(["YUYV", "MJPG"], "auto") == ["MJPG", "YUYV"]
    assert candidate_formats(["NV12", "YUYV", "RGB3"], "auto") == ["YUYV", "NV12"]
    assert candidate_formats(["RGB3"], "auto") == []


def test_forced_format_allows_only_that_format() -> None:
    """A format forced in the config ignores better ones the camera offers."""
    assert candidate_formats(["MJPG", "YUYV"], "yuyv") == ["YUYV"]
    assert candidate_formats(["YUYV"], "mjpeg") == []


def test_control_names_match_v4l2_ctl() -> None:
    """Control names are spelled the way v4l2-ctl and the YAML spell them."""
    assert control_key("Brightness") == "brightness"
    assert control_key("Y'CbCr Encoding") == "y_cbcr_encoding"
    assert control_key("White Balance Temperature, Auto") == "white_balance_temperature_auto"
    assert control_key("Power Line Frequency") == "power_line_frequency"


def test_os_errors_become_one_line_reasons() -> None:
    """Each fault the daemon reports has a reason a user can act on."""
    path = "/dev/video0"
    assert "not plugged in" in reason_for(OSError(errno.ENOENT, "x"), path)
    assert "busy" in reason_for(OSError(errno.EBUSY, "x"), path)
    assert "disconnected" in reason_for(OSError(errno.ENODEV, "x"), path)
    assert "'video' group" in reason_for(OSError(errno.EACCES, "x"), path)
    assert reason_for(OSError(errno.EIO, "Input/output error"), path).startswith(path)


def test_camera_list_reports_unreadable_and_stable_names() -> None:
    """The listing shows the stable path to put in the YAML, and devices it may not open."""
    text = format_camera_list([
        {"device": "/dev/video0", "stable": ["/dev/v4l/by-id/usb-cam-video-index0"],
         "card": "Cam", "driver": "uvcvideo", "bus": "usb-1", "capture": True,
         "inputs": ["0: Camera 1"],
         "formats": [{"format": "MJPG", "description": "Motion-JPEG", "sizes": ["1920x1080@30"]}],
         "controls": {"brightness": {"min": 0, "max": 255, "value": 128}}},
        {"device": "/dev/video2", "stable": [], "error": "permission denied: add the user to the 'video' group to use it"},
    ])  # fmt: skip
    assert "source: /dev/v4l/by-id/usb-cam-video-index0" in text
    assert "1920x1080@30" in text and "brightness = 128 [0..255]" in text
    assert "/dev/video2: permission denied" in text
    assert format_camera_list([]).startswith("no V4L2 devices")
