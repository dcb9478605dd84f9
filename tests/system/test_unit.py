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
    """The hardening leaves cameras reachable: no PrivateDevices; V4L2 allowed, and the media
    controller and DMA heaps that libcamera (rpicam-vid, libcamerasrc) opens."""
    text = UNIT.read_text()
    for device in ("video4linux", "media", "dma_heap"):
        assert re.search(rf"^DeviceAllow=char-{device} rw$", text, re.M), device
    assert not re.search(r"^PrivateDevices=yes", text, re.M)
    assert re.search(r"^WatchdogSec=", text, re.M)
    assert re.search(r"^RestartPreventExitStatus=2$", text, re.M)


def test_unit_fences_memory_and_sizes_descriptors_for_max_clients() -> None:
    """MemoryHigh < MemoryMax are set, and LimitNOFILE covers the largest max_clients."""
    text = UNIT.read_text()
    units = {"K": 2**10, "M": 2**20, "G": 2**30}

    def size(key: str) -> int:
        match = re.search(rf"^{key}=(\d+)([KMG])$", text, re.M)
        assert match, f"no {key}= in the unit"
        return int(match.group(1)) * units[match.group(2)]

    assert 256 * 2**20 <= size("MemoryHigh") < size("MemoryMax")
    nofile = re.search(r"^LimitNOFILE=(\d+)$", text, re.M)
    assert nofile, "no LimitNOFILE= in the unit"
    # config.py allows max_clients up to 10,000; keep room for handshakes and the rest.
    assert int(nofile.group(1)) >= 10_000 + 1024
