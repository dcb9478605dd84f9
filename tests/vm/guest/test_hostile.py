"""Hostile MJPEG: padded, Huffman-less, truncated and garbage frames through v4l2loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import simplejpeg
import vmlib
from feeder import FPS, HOSTILE_CYCLE

from pyimagestreamd.mjpeg import Verdict, inspect


def header_markers(jpeg: bytes) -> set[int]:
    markers, pos = set(), 2
    while jpeg[pos + 1] != 0xDA:
        markers.add(jpeg[pos + 1])
        pos += 2 + (jpeg[pos + 2] << 8 | jpeg[pos + 3])
    return markers


@pytest.mark.usefixtures("loopback")
async def test_hostile_frames_are_repaired_or_dropped_and_counted(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """Clients get only whole JPEGs with Huffman tables, at the rate of the usable frames."""
    usable = sum(kind in ("good", "padded", "nodht") for kind in HOSTILE_CYCLE) / len(HOSTILE_CYCLE)
    with vmlib.python_feeder(vmlib.LOOP_HOSTILE, "hostile"):
        daemon = start_daemon(
            vmlib.camera_yaml(
                "cam", source=vmlib.LOOP_HOSTILE, width=640, height=480, fps=30, format="mjpeg"
            )
        )
        async with vmlib.V2Client(daemon.url("cam")) as client:
            await client.pump(vmlib.timeout(30), until=lambda c: len(c.frames) >= 5)
            start = len(client.frames)
            await client.pump(6.0)
        cam = daemon.camera("cam")
    frames = [f for f in client.frames[start:] if not f.meta["offline"]]
    rate = len(frames) / 6.0
    # A camera sending mostly broken frames must not fall to a crawl: every usable frame counts.
    assert rate >= 0.8 * usable * FPS, f"{rate:.1f} fps of {usable * FPS:.0f} usable"
    for frame in frames:
        assert inspect(frame.jpeg).verdict is Verdict.OK
        assert 0xC4 in header_markers(frame.jpeg), "a frame without Huffman tables got through"
        assert simplejpeg.decode_jpeg_header(frame.jpeg)[:2] == (480, 640)
        simplejpeg.decode_jpeg(frame.jpeg)
    counts = cam["format"]["frames"]
    assert counts["truncated"] > 0 and counts["garbage"] > 0, counts
    assert counts["trimmed"] > 0 and counts["huffman_inserted"] > 0, counts
    assert cam["frames_dropped"] >= counts["truncated"] + counts["garbage"]
    assert cam["state"] == "live"
