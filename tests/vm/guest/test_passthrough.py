"""MJPEG passthrough on v4l2loopback fed with the prepared 1080p30 clip (ffmpeg -c:v copy)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import vmlib
from cheapclients import RawWsCounter

CAMERA = vmlib.camera_yaml("cam", source=vmlib.LOOP_MJPEG, width=1920, height=1080, fps=30)
WARMUP = 3.0
WINDOW = 10.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def guest_busy_seconds() -> float:
    """CPU time the guest's CPUs spent on anything but idle and iowait (/proc/stat)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def source_sequence(daemon: vmlib.Daemon) -> tuple[float, int, int]:
    """When, the driver's sequence number (v4l2loopback: the producer's frame count) and
    the daemon's count of frames captured."""
    cam = daemon.camera("cam")
    return time.monotonic(), cam["format"]["frames"]["sequence"], cam["frames_captured"]


async def measure(
    daemon: vmlib.Daemon, clients: int, feeder: int
) -> tuple[list[float], float, str]:
    """Delivered live fps of each client and the source's fps over the same window, and a
    line on the window: the daemon's captured fps (frames lost before or after capture?)
    and where the guest's CPUs went (CPU-s per s: the daemon, this process, the feeder).

    The clients are raw-socket protocol-2 readers (cheapclients.py): the guest's two CPUs
    carry the clients too, and websockets' client (~5.8 ms per frame under TCG) would
    measure itself rather than the daemon.
    """
    pids = {"daemon": daemon.proc.pid, "clients": os.getpid(), "feeder": feeder}
    counters = [RawWsCounter(daemon.port, "/websocket/cam") for _ in range(clients)]
    tasks = [asyncio.create_task(c.run()) for c in counters]
    try:
        # Warm up: the camera starts on the first viewer, the first frames may be slow.
        await asyncio.sleep(vmlib.timeout(WARMUP))
        counts = [c.frames for c in counters]
        t0, seq0, captured0 = source_sequence(daemon)
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        busy0 = guest_busy_seconds()
        await asyncio.sleep(WINDOW)
        delivered = [
            (c.frames - before) / WINDOW for c, before in zip(counters, counts, strict=True)
        ]
        cpu = {name: (cpu_seconds(pid) - cpu0[name]) / WINDOW for name, pid in pids.items()}
        busy = (guest_busy_seconds() - busy0) / WINDOW
        t1, seq1, captured1 = source_sequence(daemon)
    finally:
        for t in tasks:
            t.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if not isinstance(result, asyncio.CancelledError):
                raise AssertionError(f"a client stopped: {result!r}")
    usage = ", ".join(f"{name} {used:.2f}" for name, used in cpu.items())
    captured = (captured1 - captured0) / (t1 - t0)
    window = f"captured {captured:.2f} fps; CPU-s/s: {usage}; guest busy {busy:.2f} of 2"
    return delivered, (seq1 - seq0) / (t1 - t0), window


@pytest.mark.usefixtures("loopback")
async def test_passthrough_frames_are_byte_identical_to_the_clip(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """Every JPEG a client receives is one of the clip's frames, byte for byte."""
    known = set(vmlib.clip_frame_md5s())
    assert len(known) >= 60, "the clip's frames should all differ"
    with vmlib.clip_feeder():
        daemon = start_daemon(CAMERA)
        async with vmlib.V2Client(daemon.url("cam")) as client:
            await client.pump(vmlib.timeout(20), until=lambda c: len(c.frames) >= 60)
        frames = [f for f in client.frames if not f.meta["offline"]]
        assert len(frames) >= 60, f"only {len(frames)} frames in 20 s"
        hashes = [hashlib.md5(f.jpeg).hexdigest() for f in frames]
        unknown = [h for h in hashes if h not in known]
        assert not unknown, f"{len(unknown)} of {len(hashes)} frames differ from the clip's"
        assert len(set(hashes)) == len(hashes), "a client got the same frame twice"
        assert all((f.meta["width"], f.meta["height"]) == (1920, 1080) for f in frames)
        cam = daemon.camera("cam")
        assert cam["format"]["mode"] == "passthrough"
        assert cam["format"]["read_in"] == "event loop"
        assert cam["format"]["format"] == "MJPG"
        assert "MJPG 1920x1080" in daemon.log() and "MJPEG passthrough" in daemon.log()


# Under TCG, the clip's rate for ten clients: the clip's own 30 fps since the event loop
# reads V4L2 MJPEG itself (6 of 6 runs passed on that tree; the runs are in the README, Test
# VM). PYIMAGESTREAM_VM_MANY_CLIENTS_FPS (tests/vm/run passes it to the guest) sets
# another, to measure at another rate.
TCG_MANY_CLIENTS_FPS = float(os.environ.get("PYIMAGESTREAM_VM_MANY_CLIENTS_FPS") or 30)


def source_speed(clients: int) -> float:
    """Fraction of the clip's 30 fps to feed for `clients` clients on this guest.

    Under TCG (no usable KVM, as on the 2-core CI machines) every instruction is emulated,
    and a guest stalled by a busy host loses frames at any rate. With the capture thread's
    hand-over, 30 fps for ten clients did not pass every run and the rate was 10 fps; with
    the event loop reading V4L2 MJPEG ten clients at 30 fps leave the guest at ~0.7 of its
    two CPUs on a quiet host (the daemon ~1.2 ms per delivery), and every run passed, so
    TCG_MANY_CLIENTS_FPS is 30 (it stays settable for measuring at another rate).
    """
    if clients > 1 and os.environ.get("PYIMAGESTREAM_VM_ACCEL", "tcg") != "kvm":
        return TCG_MANY_CLIENTS_FPS / 30
    return 1.0


@pytest.mark.usefixtures("loopback")
@pytest.mark.parametrize("clients", [1, 10])
async def test_delivered_rate_is_the_source_rate(
    start_daemon: Callable[..., vmlib.Daemon], clients: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of 1 or 10 clients receives frames at the source's rate within 5%.

    Two measuring windows at most: the 2-core host is shared with other work, and a guest
    under TCG loses whole time slices when the host deschedules it. One clean window shows
    the daemon keeps up; both failing is a failure. Each window's figures are printed past
    pytest's capture, pass or fail: the README quotes them.
    """
    speed = source_speed(clients)
    expected = 30 * speed
    failures = []
    with vmlib.clip_feeder(speed=speed) as feeder:
        daemon = start_daemon(CAMERA)
        for _ in range(2):
            delivered, source, window = await measure(daemon, clients, feeder.pid)
            with capsys.disabled():
                print(f"\n{clients} clients, {30 * speed:g} fps clip: source {source:.2f} fps, "
                      f"delivered {[round(d, 2) for d in delivered]}; {window}")  # fmt: skip
            assert source > 0.9 * expected, (
                f"the feeder only managed {source:.1f} fps of {expected:.0f}"
            )
            slow = [rate for rate in delivered if abs(rate - source) > 0.05 * source]
            if not slow:
                return
            cam = daemon.camera("cam")
            counts = [
                cam[k]
                for k in ("frames_captured", "frames_published", "frames_sent", "frames_dropped")
            ]
            failures.append(
                f"delivered {slow} fps, source {source:.2f} fps; captured, published, sent, "
                f"dropped: {counts}; {cam['format']['frames']}"
            )
    raise AssertionError("; then ".join(failures))
