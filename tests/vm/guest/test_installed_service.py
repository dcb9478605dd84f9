"""The installed .deb's hardened service streams a real V4L2 camera (v4l2loopback + the clip).

`make system-test` proves the package under systemd in nspawn, with the test pattern only
(nspawn shares the host's kernel, which has no V4L2). Here the package that tests/vm/run
built into build/ (the share's /mnt/src/build/) is installed offline with apt (its Debian
dependencies are in the image), pointed at the loopback node the prepared MJPEG clip is
fed into, and checked by tests/system/installed-camera-check: the hardened unit
(DevicePolicy=closed, DeviceAllow=char-video4linux, the system-call filter, exposure <= 1.5)
opens the device as user pyimagestream, a protocol-2 client pulls complete, live JPEGs of
the configured size, and purge removes the package.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import vmlib

CHECK = vmlib.SRC / "tests/system/installed-camera-check"


def built_deb() -> Path:
    debs = sorted(
        (vmlib.SRC / "build").glob("pyimagestream_*_amd64.deb"), key=lambda p: p.stat().st_mtime
    )
    assert debs, "no build/pyimagestream_*_amd64.deb in the share: tests/vm/run builds it first"
    return debs[-1]


@pytest.fixture
def purged_after() -> Iterator[None]:
    """Whatever happens, the service must not outlive the test (it holds port 8888)."""
    yield
    subprocess.run(
        ["apt-get", "purge", "-y", "-q", "pyimagestream"], capture_output=True, check=False
    )


@pytest.mark.usefixtures("loopback", "purged_after")
def test_installed_service_streams_a_v4l2_camera() -> None:
    deb = built_deb()
    with vmlib.clip_feeder():
        result = subprocess.run(
            ["/usr/bin/python3", str(CHECK), str(deb), vmlib.LOOP_MJPEG,
             "--width", "1920", "--height", "1080", "--fps", "30", "--purge"],
            capture_output=True, text=True, timeout=vmlib.timeout(300), check=False,
        )  # fmt: skip
    print(result.stdout + result.stderr)
    assert result.returncode == 0, f"installed-camera-check failed:\n{result.stdout}{result.stderr}"
    assert "FAILED" not in result.stdout
    assert "ok: apt purge" in result.stdout
    # Purged: nothing of the package is left, and nothing listens on its port.
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "pyimagestream"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert "installed" not in status.stdout or "not-installed" in status.stdout
