"""The installed .deb in the guest: find the one tests/vm/run built, check it serves, purge it.

Shared by test_installed_service.py (V4L2 cameras and an ffmpeg pipeline, bookworm and arm64
guests) and test_libcamera.py (a libcamera pipeline on vimc, trixie guest). The check itself
is tests/system/installed-camera-check, run with the guest's own python3 as a user would:
install with apt, point /etc/pyimagestream.yaml at the camera, restart the hardened unit,
check its exposure, pull live frames, purge.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import vmlib

CHECK = vmlib.SRC / "tests/system/installed-camera-check"

# What the package installs or creates at run time, outside /usr/share/doc.
LEFT_BEHIND: Sequence[str] = (
    "/usr/lib/pyimagestream", "/usr/sbin/pyimagestreamd", "/usr/share/pyimagestream",
    "/etc/pyimagestream.yaml", "/lib/systemd/system/pyimagestream.service",
    "/usr/lib/systemd/system/pyimagestream.service",
    "/etc/systemd/system/multi-user.target.wants/pyimagestream.service",
)  # fmt: skip


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
