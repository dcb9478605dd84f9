"""The installed .deb's hardened service streams real V4L2 cameras: MJPEG and raw.

`make system-test` proves the package under systemd in nspawn, with the test pattern only
(nspawn shares the host's kernel, which has no V4L2). Here the package that tests/vm/run
built into build/ (the share's /mnt/src/build/) is installed offline with apt (its Debian
dependencies are in the image), pointed at a camera -- the loopback node the prepared MJPEG
clip is fed into (passthrough), or vivid's raw YUYV (re-encode) -- and checked by
tests/system/installed-camera-check (installed.py): the hardened unit (DevicePolicy=closed,
DeviceAllow for V4L2 and libcamera's devices, the system-call filter, exposure <= 1.5) opens
the device as user pyimagestream, a protocol-2 client pulls complete, live JPEGs of
the configured size, captured at the source's rate (within 5%), and purge removes the package:
dpkg knows nothing of it, none of its files is left, nothing listens on its port.

The guest's own architecture picks the .deb: on the arm64 guest (make vm-test-arm64) these
tests are the whole suite, and prove the cross-built arm64 package on an arm64 kernel.
"""

from __future__ import annotations

import json

import pytest
import vmlib
from installed import check_installed


@pytest.mark.usefixtures("loopback", "purged_after")
def test_installed_service_streams_a_v4l2_camera(capsys: pytest.CaptureFixture[str]) -> None:
    """MJPEG passthrough: the clip's 1080p30 JPEGs through v4l2loopback."""
    with vmlib.clip_feeder():
        check_installed(
            capsys, vmlib.LOOP_MJPEG, "--width", "1920", "--height", "1080", "--fps", "30"
        )


@pytest.mark.usefixtures("vivid", "purged_after")
def test_installed_service_reencodes_raw_vivid(capsys: pytest.CaptureFixture[str]) -> None:
    """Re-encode: vivid's webcam input gives raw YUYV 640x480 at 25 fps, the service encodes
    JPEGs at that rate. (1080p30 would be the HDMI input, but under TCG the guest re-encodes
    some 7 frames of 1080p a CPU-second: the rate check would measure the emulator.)"""
    check_installed(
        capsys, vmlib.VIVID, "--width", "640", "--height", "480", "--fps", "25", "--format", "yuyv"
    )


@pytest.mark.usefixtures("purged_after")
def test_installed_service_runs_a_pipeline_command(capsys: pytest.CaptureFixture[str]) -> None:
    """MJPEG passthrough from `source: exec`: the hardened unit runs ffmpeg copying the clip
    to stdout, as it would run rpicam-vid on a Raspberry Pi."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
               "-i", str(vmlib.CLIP), "-c:v", "copy", "-f", "mjpeg", "-"]  # fmt: skip
    check_installed(
        capsys, "exec", "--command", json.dumps(command), "--width", "1920", "--height", "1080",
        "--fps", "30",
    )  # fmt: skip
