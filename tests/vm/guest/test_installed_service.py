"""The installed .deb's hardened service streams real V4L2 cameras: MJPEG and raw.

`make system-test` proves the package under systemd in nspawn, with the test pattern only
(nspawn shares the host's kernel, which has no V4L2). Here the package that tests/vm/run
built into build/ (the share's /mnt/src/build/) is installed offline with apt (its Debian
dependencies are in the image), pointed at a camera -- the loopback node the prepared MJPEG
clip is fed into (passthrough), or vivid's raw YUYV (re-encode) -- and checked by
tests/system/installed-camera-check: the hardened unit
(DevicePolicy=closed, DeviceAllow=char-video4linux, the system-call filter, exposure <= 1.5)
opens the device as user pyimagestream, a protocol-2 client pulls complete, live JPEGs of
the configured size, captured at the source's rate (within 5%), and purge removes the package:
dpkg knows nothing of it, none of its files is left, nothing listens on its port.

The guest's own architecture picks the .deb: on the arm64 guest (make vm-test-arm64) these
tests are the whole suite, and prove the cross-built arm64 package on an arm64 kernel.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import vmlib

CHECK = vmlib.SRC / "tests/system/installed-camera-check"


def built_deb() -> Path:
    arch = vmlib.run("dpkg", "--print-architecture").stdout.strip()
    debs = sorted(
        (vmlib.SRC / "build").glob(f"pyimagestream_*_{arch}.deb"), key=lambda p: p.stat().st_mtime
    )
    assert debs, f"no build/pyimagestream_*_{arch}.deb in the share: tests/vm/run builds it first"
    return debs[-1]


def check_installed(capsys: pytest.CaptureFixture[str], device: str, *options: str) -> None:
    """installed-camera-check: install, serve DEVICE, status, purge; then nothing is left."""
    result = subprocess.run(
        ["/usr/bin/python3", str(CHECK), str(built_deb()), device, *options, "--purge"],
        capture_output=True, text=True, timeout=vmlib.timeout(300), check=False,
    )  # fmt: skip
    print(result.stdout + result.stderr)
    assert result.returncode == 0, f"installed-camera-check failed:\n{result.stdout}{result.stderr}"
    assert "FAILED" not in result.stdout
    assert "ok: apt purge" in result.stdout
    with capsys.disabled():  # the measured rates, in the log of every run
        print("".join(f"\n  {line}" for line in result.stdout.splitlines() if "frames/s" in line))
    # Purged, not just removed: dpkg knows nothing of the package (a removed one stays as
    # "rc", config-files, which the old check let pass), and nothing listens on its port.
    status = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "pyimagestream"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert status.returncode != 0 or status.stdout.strip() in ("", "un"), status.stdout
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as probe:
            assert probe.connect_ex((address, 8888)) != 0, f"something listens on {address} 8888"
    left = [p for p in LEFT_BEHIND if Path(p).exists()]
    assert not left, f"left behind after purge: {left}"


# What the package installs or creates at run time, outside /usr/share/doc.
LEFT_BEHIND: Sequence[str] = (
    "/usr/lib/pyimagestream", "/usr/sbin/pyimagestreamd", "/usr/share/pyimagestream",
    "/etc/pyimagestream.yaml", "/lib/systemd/system/pyimagestream.service",
    "/usr/lib/systemd/system/pyimagestream.service",
    "/etc/systemd/system/multi-user.target.wants/pyimagestream.service",
)  # fmt: skip


@pytest.fixture
def purged_after() -> Iterator[None]:
    """Whatever happens, the service must not outlive the test (it holds port 8888)."""
    yield
    subprocess.run(
        ["apt-get", "purge", "-y", "-q", "pyimagestream"], capture_output=True, check=False
    )


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
