"""The unit file itself, checked on the host before anything boots."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pyimagestream.service"
MAX_EXPOSURE = 1.5


def exposure(unit: Path) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, f"no exposure figure in:\n{out}"
    return float(match.group(1))


def test_unit_exposure_is_at_most_1_5() -> None:
    """systemd-analyze security rates the hardened unit at exposure 1.5 or lower."""
    level = exposure(UNIT)
    print(f"systemd-analyze security --offline=true: exposure {level}")
    assert level <= MAX_EXPOSURE


def test_unit_keeps_camera_access() -> None:
    """The hardening leaves /dev/video* reachable: no PrivateDevices, video4linux allowed."""
    text = UNIT.read_text()
    assert "DeviceAllow=char-video4linux rw" in text
    assert not re.search(r"^PrivateDevices=yes", text, re.M)
    assert re.search(r"^WatchdogSec=", text, re.M)
    assert re.search(r"^RestartPreventExitStatus=2$", text, re.M)
