"""Smoke test of the guest itself: the kernel drivers the other tests need load."""

import subprocess


def test_vivid_and_v4l2loopback_load() -> None:
    """Both drivers load on the guest kernel."""
    subprocess.run(["modprobe", "vivid"], check=True)
    subprocess.run(["modprobe", "v4l2loopback", "devices=1", "video_nr=20"], check=True)
    out = subprocess.run(["v4l2-ctl", "--list-devices"], capture_output=True, text=True).stdout
    print(out)
    assert "vivid" in out
    subprocess.run(["modprobe", "-r", "v4l2loopback", "vivid"], check=True)
