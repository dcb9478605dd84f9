"""libcamera in the trixie guest: the kernel's vimc driver as a real libcamera camera.

On Raspberry Pi OS the Camera Module is driven by libcamera only (its /dev/video* node gives
raw Bayer through the media controller), and the daemon reaches it through the pipeline
source (`source: exec` with `rpicam-vid ... --codec mjpeg -o -`). vimc is the kernel's
virtual media-controller camera (sensor, debayer, scaler, capture nodes) and libcamera's
`vimc` pipeline handler drives it like a real one, so the same path is exercised here
without a Pi: libcamera's own tools (`cam`, GStreamer's `libcamerasrc`) feed the daemon's
pipeline source, and frames reach a client -- from a daemon run from the source tree, and
from the installed .deb's hardened unit (its DeviceAllow must cover libcamera's devices).
These tests run only in the trixie guest
(`make vm-test-libcamera`): bookworm has libcamera 0.0.3 and no Python bindings.
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import simplejpeg
import vmlib
from installed import check_installed

WIDTH, HEIGHT = 640, 480
# libcamera's GStreamer element as a camera command: what `rpicam-vid` is on a Pi.
GST_MJPEG = [
    "gst-launch-1.0", "-q", "libcamerasrc", "!",
    f"video/x-raw,width={WIDTH},height={HEIGHT}", "!", "videoconvert", "!",
    "jpegenc", "quality=80", "!", "fdsink", "fd=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def vimc() -> Iterator[None]:
    vmlib.run("modprobe", "vimc")
    vmlib.wait_until(lambda: glob.glob("/dev/media*"), 10, "vimc's media device")
    # The media node appears before vimc has registered its entities: a `cam -l` at once
    # listed no camera (seen in the first run).
    vmlib.wait_until(
        lambda: "Sensor B" in vmlib.run("cam", "-l", check=False).stdout, 30, "cam -l to list vimc"
    )
    yield
    vmlib.run("modprobe", "-r", "vimc", check=False)


@pytest.mark.usefixtures("vimc")
def test_cam_lists_the_vimc_camera() -> None:
    listing = vmlib.run("cam", "-l").stdout
    print(listing)
    assert "Sensor B" in listing, f"cam -l does not list vimc's sensor:\n{listing}"


@pytest.mark.usefixtures("vimc")
async def test_libcamerasrc_feeds_the_pipeline_source(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """gst-launch-1.0 libcamerasrc ! jpegenc as `source: exec`: live JPEGs reach a client."""
    daemon = start_daemon(
        vmlib.camera_yaml(
            "cam", source="exec", command=GST_MJPEG, width=WIDTH, height=HEIGHT, fps=30
        )
    )
    async with vmlib.V2Client(daemon.url("cam")) as client:
        await client.pump(
            vmlib.timeout(60),
            until=lambda c: sum(not f.meta["offline"] for f in c.frames) >= 10,
        )
    live = [f for f in client.frames if not f.meta["offline"]]
    assert len(live) >= 10, f"{len(live)} live frames; daemon log:\n{daemon.log()}"
    for frame in live:
        assert frame.jpeg[:2] == b"\xff\xd8" and frame.jpeg[-2:] == b"\xff\xd9", "not a whole JPEG"
        height, width, _, _ = simplejpeg.decode_jpeg_header(frame.jpeg)
        assert (width, height) == (WIDTH, HEIGHT)
    seqs = [int(f.meta["seq"]) for f in live]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"not live frames: {seqs}"


@pytest.mark.usefixtures("vimc")
def test_list_cameras_shows_the_libcamera_camera() -> None:
    """--list-cameras parses real `cam -l` output (no rpicam-hello here) into an exec entry."""
    result = subprocess.run(
        [sys.executable, "-m", "pyimagestreamd", "--list-cameras"],
        cwd=vmlib.SRC, capture_output=True, text=True, timeout=vmlib.timeout(60), check=False,
    )  # fmt: skip
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert "Sensor B" in result.stdout, result.stdout


@pytest.mark.usefixtures("vimc", "purged_after")
def test_installed_service_runs_libcamerasrc(capsys: pytest.CaptureFixture[str]) -> None:
    """The hardened unit, as shipped, runs libcamerasrc as `source: exec`: live JPEGs reach a
    client (libcamera needs /dev/media*, which DeviceAllow=char-video4linux alone denies)."""
    # --any-rate: vimc's pace under TCG is the emulator's, not a rate the service could be
    # held to (ffmpeg -re has one; this pipeline has none).
    check_installed(
        capsys, "exec", "--command", json.dumps(GST_MJPEG), "--width", str(WIDTH),
        "--height", str(HEIGHT), "--fps", "5", "--any-rate",
    )  # fmt: skip
