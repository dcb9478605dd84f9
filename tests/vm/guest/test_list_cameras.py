"""`pyimagestreamd --list-cameras` on vivid and v4l2loopback, as root and as a stranger."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import vmlib


def list_cameras(*prefix: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = vmlib.SRC
        if prefix:
            # Another user may not reach the shared tree (a checkout in a 0700 directory,
            # as `mktemp -d` makes): it runs a readable copy of the package.
            os.chmod(tmp, 0o755)
            shutil.copytree(vmlib.SRC / "pyimagestreamd", Path(tmp) / "pyimagestreamd")
            cwd = Path(tmp)
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "pyimagestreamd", "--list-cameras"],
            cwd=cwd, capture_output=True, text=True, timeout=vmlib.timeout(60), check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    return result.stdout


def by_device(out: str) -> dict[str, str]:
    """The listing's block of lines for each /dev/videoN."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("/dev/"):
            current = line.split(":", 1)[0]
            blocks[current] = []
        if current is not None:
            blocks[current].append(line)
    return {k: "\n".join(v) for k, v in blocks.items()}


@pytest.mark.usefixtures("vivid", "loopback")
def test_list_cameras_shows_devices_formats_sizes_and_rates() -> None:
    """vivid and a fed v4l2loopback node appear with card, stable name, formats, sizes, fps."""
    with vmlib.clip_feeder():
        vmlib.wait_until(
            lambda: "MJPG" in vmlib.run("v4l2-ctl", "-d", vmlib.LOOP_MJPEG, "--list-formats").stdout,
            20, "the feeder to set its format",
        )  # fmt: skip
        out = list_cameras()
    devices = by_device(out)
    vivid = devices[vmlib.VIVID]
    assert "vivid" in vivid.splitlines()[0]
    assert "source: /dev/v4l/by-path/" in vivid, "vivid's stable by-path name is missing"
    assert "inputs: 0: Webcam 0" in vivid and "HDMI" in vivid
    assert "YUYV" in vivid and "640x480@" in vivid
    loop = devices[vmlib.LOOP_MJPEG]
    assert "pis-mjpeg" in loop
    assert "MJPG" in loop and "1920x1080@30" in loop


@pytest.mark.usefixtures("vivid", "loopback")
def test_list_cameras_reports_devices_a_user_may_not_open() -> None:
    """Run as a user outside the 'video' group, each device is listed as not permitted."""
    out = list_cameras("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    assert "/dev/video0: permission denied" in out
    assert "/dev/video10: permission denied" in out
