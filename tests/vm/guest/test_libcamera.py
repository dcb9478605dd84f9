"""libcamera in the trixie guest: the kernel's vimc driver as a real libcamera camera.

On Raspberry Pi OS the Camera Module is driven by libcamera only (its /dev/video* node gives
raw Bayer through the media controller), and the daemon reaches it through the pipeline
source (`source: exec` with `rpicam-vid ... --codec mjpeg -o -`). vimc is the kernel's
virtual media-controller camera (sensor, debayer, scaler, capture nodes) and libcamera's
`vimc` pipeline handler drives it like a real one, so the same path is exercised here
without a Pi: libcamera's own tools (`cam`, GStreamer's `libcamerasrc`) feed the daemon's
pipeline source, and frames reach a client -- from a daemon run from the source tree, and
from the installed .deb's hardened unit (its DeviceAllow must cover libcamera's devices).
The native source (`source: libcamera`, libcamerasource.py) drives the same camera through
Debian's python3-libcamera. These tests run only in the trixie guest
(`make vm-test-libcamera`): bookworm has libcamera 0.0.3 and no Python bindings.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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


def live(client: vmlib.V2Client) -> list[vmlib.Received]:
    return [f for f in client.frames if not f.meta["offline"]]


def check_live_frames(frames: list[vmlib.Received], at_least: int, daemon: vmlib.Daemon) -> None:
    """At least `at_least` frames, each a whole JPEG of WIDTH x HEIGHT, in rising sequence
    order without repeats (live frames, not one frame sent again)."""
    assert len(frames) >= at_least, f"{len(frames)} live frames; daemon log:\n{daemon.log()}"
    for frame in frames:
        assert frame.jpeg[:2] == b"\xff\xd8" and frame.jpeg[-2:] == b"\xff\xd9", "not a whole JPEG"
        height, width, _, _ = simplejpeg.decode_jpeg_header(frame.jpeg)
        assert (width, height) == (WIDTH, HEIGHT)
    seqs = [int(f.meta["seq"]) for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"not live frames: {seqs}"


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
    check_live_frames(live(client), 10, daemon)


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


def cam_captures() -> subprocess.CompletedProcess[str]:
    """libcamera's own `cam` acquires the camera and captures 3 frames: it can only while no
    other process holds the camera."""
    return subprocess.run(
        ["cam", "-c", "1", "-C3"], capture_output=True, text=True,
        timeout=vmlib.timeout(60), check=False,
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.usefixtures("vimc")
async def test_native_source_streams_sleeps_and_wakes(
    start_daemon: Callable[..., vmlib.Daemon],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`source: libcamera` on vimc: whole JPEGs of the configured size reach a client; after
    `stop_delay` the camera is released (`cam` can capture from it) and a viewer wakes it."""
    # The daemon runs on the guest's venv (the same python3.13): it gets Debian's bindings,
    # and nothing else of the system's packages, through a directory holding only them.
    bindings = glob.glob("/usr/lib/python3/dist-packages/libcamera")
    assert bindings, "python3-libcamera is not installed in the guest"
    only = tmp_path / "bindings"
    only.mkdir()
    (only / "libcamera").symlink_to(bindings[0])
    monkeypatch.setenv("PYTHONPATH", str(only))
    daemon = start_daemon(
        vmlib.camera_yaml(
            "cam", source="libcamera", width=WIDTH, height=HEIGHT, fps=30, stop_delay=2
        )
    )
    async with vmlib.V2Client(daemon.url("cam")) as client:
        await client.pump(vmlib.timeout(60), until=lambda c: len(live(c)) >= 2)
        cpu0, frames0, t0 = cpu_seconds(daemon.proc.pid), len(live(client)), time.monotonic()
        await client.pump(vmlib.timeout(60), until=lambda c: len(live(c)) >= frames0 + 10)
        cpu1, frames1, t1 = cpu_seconds(daemon.proc.pid), len(live(client)), time.monotonic()
        held = cam_captures()  # while the daemon streams, the camera is its own
        cam = daemon.camera("cam")
    check_live_frames(live(client), 12, daemon)
    assert held.returncode != 0, f"cam captured while the daemon held the camera:\n{held.stdout}"
    with capsys.disabled():  # the measured figures, in the log of every run
        count = frames1 - frames0
        print(
            f"\n  native libcamera {WIDTH}x{HEIGHT} {cam['format'].get('format')}: "
            f"{count / (t1 - t0):.2f} frames/s delivered, "
            f"{1000 * (cpu1 - cpu0) / count:.0f} ms daemon CPU per frame"
        )

    daemon.wait_camera("cam", lambda c: c["state"] == "sleeping", 30, "the camera to sleep")
    freed = cam_captures()
    assert freed.returncode == 0, (
        f"cam cannot capture after the daemon slept:\n{freed.stdout}{freed.stderr}\n{daemon.log()}"
    )

    async with vmlib.V2Client(daemon.url("cam")) as again:
        await again.pump(vmlib.timeout(60), until=lambda c: len(live(c)) >= 3)
    assert len(live(again)) >= 3, f"did not wake; daemon log:\n{daemon.log()}"
    assert daemon.camera("cam")["captures_started"] >= 2, daemon.camera("cam")
